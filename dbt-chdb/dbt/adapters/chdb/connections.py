"""Connection manager that opens chdb clients under the inter-process path lock."""

from dbt.adapters.chdb.client import ChdbClient
from dbt.adapters.clickhouse.connections import ClickHouseConnectionManager, retryable_exceptions
from dbt.adapters.clickhouse.logger import logger


class ChdbConnectionManager(ClickHouseConnectionManager):
    TYPE = "chdb"

    @classmethod
    def open(cls, connection):
        if connection.state == "open":
            return connection
        credentials = cls.get_credentials(connection.credentials)

        def connect():
            return ChdbClient(credentials)

        return cls.retry_connection(
            connection,
            connect=connect,
            logger=logger,
            retry_limit=credentials.retries,
            retryable_exceptions=retryable_exceptions,
        )

    def cancel(self, connection):
        # A query running in this process cannot be interrupted from another thread;
        # closing here would release the path lock under a running query.
        logger.debug("Cancel requested for {}; chdb queries finish in-process", connection.name)
