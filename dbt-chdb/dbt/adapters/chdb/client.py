"""dbt-clickhouse client wrapper that talks to the embedded engine instead of HTTP."""

from pathlib import Path

import chdb_lock
from dbt.adapters.clickhouse.httpclient import ChHttpClient

# Settings that only mean something to an HTTP server session; chdb rejects them.
_HTTP_ONLY_SETTINGS = {"session_id"}


class ChdbClient(ChHttpClient):
    """Reuse the HTTP wrapper, because clickhouse-connect's chdb client has the same interface."""

    def _create_client(self, credentials):
        settings = {key: value for key, value in self._conn_settings.items() if key not in _HTTP_ONLY_SETTINGS}
        return chdb_lock.open_locked_client(
            Path(credentials.path),
            credentials.lock_timeout_seconds,
            query_limit=0,
            settings=settings,
        )

    def get_ch_setting(self, setting_name):
        result = self._client.query(
            "SELECT value, readonly FROM system.settings WHERE name = {name:String}",
            parameters={"name": setting_name},
        )
        if not result.result_rows:
            return None, 0
        value, readonly = result.result_rows[0]
        return value, readonly

    def database_dropped(self, database: str):
        # The chdb client applies the database with USE, and None would not reset it.
        super(ChHttpClient, self).database_dropped(database)
        if self.database == database:
            self._client.database = "default"

    def close(self):
        self._client.close()
