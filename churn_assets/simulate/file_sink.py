"""Write simulated events as input files in the format `churn ingest` reads."""

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn_assets.simulate.parameters import RunParameters, SimulationError
from churn_assets.simulate.population import Population

FILE_FORMATS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}
ISO_8601 = "%Y-%m-%dT%H:%M:%SZ"

# Input columns of each file, in the order written, and the raw table column each comes from.
FILE_COLUMNS = {
    "purchases": {
        "user_id": "user_id", "purchase_date": "purchased_at", "purchase_value": "purchase_value",
        "purchase_id": "purchase_id", "discount_code": "discount_code",
    },
    "user_actions": {
        "user_id": "user_id", "action": "action", "event_time": "event_at", "event_id": "event_id",
        "discount_code": "discount_code", "value": "value",
    },
}


def output_paths(folder: Path, file_format: str) -> dict[str, Path]:
    """Return the file path of each table, e.g. folder/purchases.parquet."""
    if file_format not in FILE_FORMATS:
        raise SimulationError(f"Unknown file format {file_format!r}; use csv, parquet or jsonl.")
    return {table: folder / f"{table}.{FILE_FORMATS[file_format]}" for table in FILE_COLUMNS}


def to_input_columns(rows: pa.Table, table: str, file_format: str) -> pa.Table:
    """Return the rows with the input file columns: times as ISO 8601 text, amounts as decimals.

    JSON Lines gets amounts as numbers, because JSON has no decimal type.
    """
    columns = {}
    for name, source in FILE_COLUMNS[table].items():
        column = rows.column(source)
        if pa.types.is_timestamp(column.type):
            # Simulated times are whole seconds, and at millisecond unit strftime would add ".000".
            column = pc.strftime(column.cast(pa.timestamp("s", tz="UTC")), format=ISO_8601)
        elif pa.types.is_decimal(column.type) and file_format == "jsonl":
            column = pc.cast(column, pa.float64())
        columns[name] = column
    return pa.table(columns)


class FileSink:
    """Appends blocks of events to one purchases file and one user_actions file."""

    def __init__(self, folder: Path, file_format: str):
        self.paths = output_paths(folder, file_format)
        existing = [str(path) for path in self.paths.values() if path.exists()]
        if existing:
            raise SimulationError(f"{', '.join(existing)} already exist; remove them or choose another folder.")
        folder.mkdir(parents=True, exist_ok=True)
        self.file_format = file_format
        self.writers: dict[str, object] = {}

    def write_events(self, tables: dict[str, pa.Table], first_day: int, last_day: int) -> None:
        for table, rows in tables.items():
            self._append(table, to_input_columns(rows, table, self.file_format))

    def _append(self, table: str, rows: pa.Table) -> None:
        path = self.paths[table]
        if self.file_format == "jsonl":
            with path.open("a", encoding="utf-8") as handle:
                if rows.num_rows:
                    text = rows.to_pandas().to_json(orient="records", lines=True)
                    handle.write(text if text.endswith("\n") else text + "\n")
            return
        writer = self.writers.get(table)
        if writer is None:
            if self.file_format == "csv":
                writer = pa_csv.CSVWriter(path, rows.schema)
            else:
                writer = pq.ParquetWriter(path, rows.schema)
            self.writers[table] = writer
        writer.write_table(rows)

    def write_offer_truth(self, rows: pa.Table) -> None:
        """Files get no offers: a simulation without a warehouse has no offers table to read."""

    def checkpoint(self, run: RunParameters, population: Population) -> None:
        """Files keep no state: a file simulation cannot be continued."""

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
