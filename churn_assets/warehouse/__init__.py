"""Access to the ClickHouse warehouse, embedded (chdb) or a server, chosen by one URL."""

from churn_assets.warehouse.client import open_client
from churn_assets.warehouse.settings import WarehouseSettings, load_settings

__all__ = ["WarehouseSettings", "load_settings", "open_client"]
