"""Open a clickhouse-connect client on the configured warehouse, late and closed early."""

from collections.abc import Iterator
from contextlib import contextmanager

import clickhouse_connect
import chdb_lock

from churn_assets.warehouse.settings import WarehouseSettings, load_settings

CLIENT_NAME = "churn-pipeline"


def connect(settings: WarehouseSettings, lock_timeout_seconds: float | None = None):
    """Return an open client; on the embedded engine it holds the path lock until closed."""
    if settings.is_embedded:
        timeout = settings.lock_timeout_seconds if lock_timeout_seconds is None else lock_timeout_seconds
        return chdb_lock.open_locked_client(settings.path, timeout)
    return clickhouse_connect.get_client(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        secure=settings.secure,
        client_name=CLIENT_NAME,
        connect_timeout=10,
        send_receive_timeout=600,
    )


@contextmanager
def open_client(settings: WarehouseSettings | None = None, lock_timeout_seconds: float | None = None) -> Iterator:
    """Yield a client for the duration of a block; the embedded lock is released on exit."""
    client = connect(settings or load_settings(), lock_timeout_seconds)
    try:
        yield client
    finally:
        client.close()
