"""Dagster resources shared by every stage."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from churn_assets.warehouse.client import open_client
from churn_assets.warehouse.settings import URL_VARIABLE, WarehouseSettings, load_settings, parse_url


class WarehouseResource(dg.ConfigurableResource):
    """The ClickHouse warehouse. An empty `url` means CHURN_WAREHOUSE_URL, or the embedded default."""

    url: str = ""
    lock_timeout_seconds: float | None = None

    def settings(self) -> WarehouseSettings:
        """Return the settings; an unset lock timeout means CHURN_WAREHOUSE_LOCK_TIMEOUT or its default."""
        settings = load_settings()
        if self.url:
            settings = parse_url(self.url, password=os.environ.get("CHURN_WAREHOUSE_PASSWORD", ""),
                                 lock_timeout_seconds=settings.lock_timeout_seconds)
        return settings

    @contextmanager
    def open(self) -> Iterator:
        """Yield a client; close it before starting anything else that needs the warehouse (such as dbt)."""
        with open_client(self.settings(), self.lock_timeout_seconds) as client:
            yield client

    @contextmanager
    def open_for_sensor(self, lock_timeout_seconds: float) -> Iterator:
        """Yield a client after waiting at most `lock_timeout_seconds` for the embedded warehouse."""
        with open_client(self.settings(), lock_timeout_seconds) as client:
            yield client

    def export_to_environment(self) -> None:
        """Put this warehouse's absolute URL in the environment, so dbt subprocesses use the same one."""
        settings = self.settings()
        if settings.is_embedded:
            os.environ[URL_VARIABLE] = f"chdb://{settings.path}"
        elif self.url:
            os.environ[URL_VARIABLE] = self.url
