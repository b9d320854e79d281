"""Profile fields for the chdb adapter."""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dbt.adapters.clickhouse.credentials import ClickHouseCredentials
from dbt_common.exceptions import DbtConfigError


def resolve_database_path(location: str) -> Path:
    """Accept `chdb:///abs/path`, `chdb://relative/path` or a plain path; relative to the working folder."""
    text = location.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() != "chdb":
            raise DbtConfigError(
                f"The chdb adapter needs a chdb:// location, not {parts.scheme}://; "
                "use the clickhouse target for a server."
            )
        text = unquote(parts.netloc + parts.path)
    if not text:
        raise DbtConfigError("The chdb profile needs a `path` (a folder or chdb:// URL).")
    return Path(os.path.expanduser(text)).resolve()


@dataclass
class ChdbCredentials(ClickHouseCredentials):
    """ClickHouse credentials plus the folder of the embedded database and how long to wait for it."""

    path: str = ""
    lock_timeout_seconds: float = 600.0

    @property
    def type(self):
        return "chdb"

    @property
    def unique_field(self):
        return str(resolve_database_path(self.path))

    def __post_init__(self):
        super().__post_init__()
        self.path = str(resolve_database_path(self.path))
        # The engine runs inside the dbt process, so there is no replica set to compare with.
        self.check_exchange = False

    def _connection_keys(self):
        return ("path", "schema", "lock_timeout_seconds", "retries")
