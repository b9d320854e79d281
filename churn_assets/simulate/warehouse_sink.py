"""Write simulated events, offer outcomes and checkpoints into the warehouse."""

import pyarrow as pa

from churn_assets.simulate import sim_tables
from churn_assets.simulate.event_tables import day_id_prefix, id_prefix
from churn_assets.simulate.parameters import RunParameters
from churn_assets.simulate.population import Population

# Table name and id column of the raw tables that receive events.
RAW_EVENT_TABLES = {"purchases": "purchase_id", "user_actions": "event_id"}


def last_day_with_events(client, seed: int, from_day: int) -> int | None:
    """Return the latest day on or after `from_day` that already has simulated events, or None.

    Such days exist when a run stopped after inserting events and before its checkpoint, or when
    files from simulate_to_files with the same seed were ingested.
    """
    prefix = id_prefix(seed)
    latest = None
    for table, id_column in RAW_EVENT_TABLES.items():
        found = client.command(
            f"SELECT max({id_column}) FROM raw.{table} WHERE {id_column} >= {{low:String}} AND {id_column} < {{high:String}}",
            parameters={"low": day_id_prefix(seed, from_day), "high": prefix + "~"},
        )
        if found:
            day = int(str(found)[len(prefix):len(prefix) + 5])
            latest = day if latest is None else max(latest, day)
    return latest


class WarehouseSink:
    """Inserts blocks of events into raw.purchases and raw.user_actions.

    Blocks that cover days which may already have events (see `last_day_with_events`) go through
    a staging table, and only ids not yet present are inserted.
    """

    def __init__(self, client, seed: int, user_ids: pa.Array, existing_until_day: int | None):
        self.client = client
        self.seed = seed
        self.user_ids = user_ids
        self.existing_until_day = existing_until_day

    def write_events(self, tables: dict[str, pa.Table], first_day: int, last_day: int) -> None:
        for table, rows in tables.items():
            if not rows.num_rows:
                continue
            if self.existing_until_day is not None and first_day <= self.existing_until_day:
                self._insert_missing(table, rows, first_day, last_day)
            else:
                self.client.insert_arrow(f"raw.{table}", rows)

    def _insert_missing(self, table: str, rows: pa.Table, first_day: int, last_day: int) -> None:
        id_column = RAW_EVENT_TABLES[table]
        staging = f"sim._staging_{table}"
        self.client.command(f"DROP TABLE IF EXISTS {staging}")
        self.client.command(f"CREATE TABLE {staging} AS raw.{table} ENGINE = MergeTree ORDER BY {id_column}")
        try:
            self.client.insert_arrow(staging, rows)
            self.client.command(
                f"INSERT INTO raw.{table} SELECT * FROM {staging} WHERE {id_column} NOT IN ("
                f"SELECT {id_column} FROM raw.{table} WHERE {id_column} >= {{low:String}} AND {id_column} < {{high:String}})",
                parameters={"low": day_id_prefix(self.seed, first_day), "high": day_id_prefix(self.seed, last_day + 1)},
            )
        finally:
            self.client.command(f"DROP TABLE IF EXISTS {staging}")

    def write_offer_truth(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self.client.insert_arrow("sim.offer_truth", rows)

    def checkpoint(self, run: RunParameters, population: Population) -> None:
        sim_tables.save_checkpoint(self.client, run, population, self.user_ids)
