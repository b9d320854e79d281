"""Load one input file into a raw table without duplicates, recording rejected rows and the run."""

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn_assets.ingest.contract import CONTRACTS, PURCHASES, FileContract, InputFileError, map_columns
from churn_assets.ingest.readers import RawChunk, read_cdnow, read_chunks
from churn_assets.ingest.validate import OccurrenceCounter, validate_chunk
from churn_assets.warehouse.schema import ensure_pipeline_tables

STAGING_PREFIX = "_ingest_"
REJECTED_TEXT_LIMIT = 10_000


@dataclass
class IngestResult:
    """Counts of one ingest run."""

    ingest_id: str
    table: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_already_present: int
    rows_rejected: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.source_file} -> raw.{self.table}: {self.rows_read} rows read, {self.rows_loaded} loaded, "
            f"{self.rows_already_present} already present, {self.rows_rejected} rejected ({self.seconds:.1f} s)"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _arrow_rows(rows: pd.DataFrame, contract: FileContract, ingest_id: str, source_file: str, loaded_at: datetime) -> pa.Table:
    time_column = "purchased_at" if contract is PURCHASES else "event_at"
    value_column = "purchase_value" if contract is PURCHASES else "value"
    columns = {
        contract.id_column: pa.array(rows[contract.id_column].astype(object), pa.string()),
        "user_id": pa.array(rows["user_id"].astype(object), pa.string()),
        time_column: pa.array(rows[time_column], pa.timestamp("ms", tz="UTC")),
        value_column: pc.cast(
            pa.array([None if pd.isna(value) else f"{value:.2f}" for value in rows[value_column]], pa.string()),
            pa.decimal128(18, 2),
        ),
        "discount_code": pa.array(rows["discount_code"].astype(object).where(rows["discount_code"].notna(), None), pa.string()),
        "source_file": pa.array([source_file] * len(rows), pa.string()),
        "source_line": pa.array(rows["source_line"], pa.uint64()),
        "ingest_id": pa.array([ingest_id] * len(rows), pa.string()),
        "loaded_at": pa.array([loaded_at] * len(rows), pa.timestamp("ms", tz="UTC")),
    }
    if contract is PURCHASES:
        columns["quantity"] = pa.array(rows["quantity"].astype(object).where(rows["quantity"].notna(), None), pa.uint32())
    else:
        columns["action"] = pa.array(rows["action"].astype(object), pa.string())
    return pa.table(columns)


def _drop_leftover_staging(client) -> None:
    leftovers = client.query(
        "SELECT name FROM system.tables WHERE database = 'raw' AND startsWith(name, {prefix:String})",
        parameters={"prefix": STAGING_PREFIX},
    ).result_rows
    for (name,) in leftovers:
        client.command(f"DROP TABLE IF EXISTS raw.`{name}`")


def ingest_chunks(
    client,
    chunks: Iterator[RawChunk],
    contract: FileContract,
    source_file: str,
    file_digest: str,
    progress: Callable[[str], None] = print,
) -> IngestResult:
    """Stage every valid row, then move the rows not yet present into the raw table in one statement."""
    started = time.monotonic()
    started_at = datetime.now(timezone.utc)
    ingest_id = uuid.uuid4().hex
    ensure_pipeline_tables(client)
    if client.__class__.__name__ == "ChdbClient":
        # Only this process can hold the embedded warehouse, so any staging table is a leftover of a killed run.
        _drop_leftover_staging(client)

    staging = f"raw.`{STAGING_PREFIX}{contract.table}_{ingest_id}`"
    staging_rejections = f"raw.`{STAGING_PREFIX}rejected_{ingest_id}`"
    client.command(f"CREATE TABLE {staging} AS raw.{contract.table} ENGINE = MergeTree ORDER BY {contract.id_column}")
    # Rejections wait here too, so a file that fails as a whole leaves nothing behind.
    client.command(f"CREATE TABLE {staging_rejections} AS raw.rejected_rows ENGINE = MergeTree ORDER BY tuple()")
    counter = OccurrenceCounter()
    # Rejections of an earlier load of the same file content are already recorded.
    recorded_rejections = set(client.query(
        "SELECT line_number, reason FROM raw.rejected_rows WHERE file_sha256 = {digest:String} AND target_table = {table:String}",
        parameters={"digest": file_digest, "table": contract.table},
    ).result_rows)
    rows_read = rows_rejected = 0
    mapping: dict[str, str] | None = None

    try:
        for chunk in chunks:
            if mapping is None:
                mapping = map_columns(list(chunk.frame.columns), contract, source_file)
            # A later chunk may lack a column (JSON Lines keys vary), which then counts as missing.
            chunk.frame = chunk.frame.reindex(columns=list(mapping)).rename(columns=mapping)
            checked = validate_chunk(chunk, contract, counter)
            rows_read += len(chunk.frame) + len(chunk.malformed)
            rows_rejected += len(checked.rejections)
            if len(checked.rows):
                client.insert_arrow(staging, _arrow_rows(checked.rows, contract, ingest_id, source_file, started_at))
            new_rejections = [
                rejection for rejection in checked.rejections
                if (rejection.line_number, rejection.reason[:REJECTED_TEXT_LIMIT]) not in recorded_rejections
            ]
            _insert_rejections(client, staging_rejections, new_rejections, ingest_id, contract, source_file, file_digest, started_at)
            progress(f"  read {rows_read} rows, {rows_rejected} rejected so far")

        if mapping is None and rows_read == 0:
            raise InputFileError(f"{source_file}: the file has no rows.")

        staged = client.command(f"SELECT count() FROM {staging}")
        client.command(
            f"INSERT INTO raw.{contract.table} SELECT * FROM {staging} "
            f"WHERE {contract.id_column} NOT IN (SELECT {contract.id_column} FROM raw.{contract.table})"
        )
        client.command(f"INSERT INTO raw.rejected_rows SELECT * FROM {staging_rejections}")
        loaded = client.command(f"SELECT count() FROM raw.{contract.table} WHERE ingest_id = {{ingest_id:String}}", parameters={"ingest_id": ingest_id})
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging}")
        client.command(f"DROP TABLE IF EXISTS {staging_rejections}")

    result = IngestResult(
        ingest_id=ingest_id,
        table=contract.table,
        source_file=source_file,
        rows_read=rows_read,
        rows_loaded=int(loaded),
        rows_already_present=int(staged) - int(loaded),
        rows_rejected=rows_rejected,
        seconds=time.monotonic() - started,
    )
    _record_run(client, result, file_digest, started_at)
    return result


def _insert_rejections(
    client, table: str, rejections, ingest_id: str, contract: FileContract, source_file: str, file_digest: str, rejected_at: datetime
) -> None:
    if not rejections:
        return
    rows = pa.table(
        {
            "ingest_id": pa.array([ingest_id] * len(rejections), pa.string()),
            "target_table": pa.array([contract.table] * len(rejections), pa.string()),
            "source_file": pa.array([source_file] * len(rejections), pa.string()),
            "file_sha256": pa.array([file_digest] * len(rejections), pa.string()),
            "line_number": pa.array([rejection.line_number for rejection in rejections], pa.uint64()),
            "raw_text": pa.array([rejection.raw_text[:REJECTED_TEXT_LIMIT] for rejection in rejections], pa.string()),
            "reason": pa.array([rejection.reason[:REJECTED_TEXT_LIMIT] for rejection in rejections], pa.string()),
            "rejected_at": pa.array([rejected_at] * len(rejections), pa.timestamp("ms", tz="UTC")),
        }
    )
    client.insert_arrow(table, rows)


def _record_run(client, result: IngestResult, file_digest: str, started_at: datetime) -> None:
    client.insert(
        "raw.ingest_runs",
        [[
            result.ingest_id, result.table, result.source_file, file_digest, result.rows_read, result.rows_loaded,
            result.rows_already_present, result.rows_rejected, started_at, datetime.now(timezone.utc),
        ]],
        column_names=[
            "ingest_id", "target_table", "source_file", "file_sha256", "rows_read", "rows_loaded",
            "rows_already_present", "rows_rejected", "started_at", "finished_at",
        ],
    )


def ingest_file(client, kind: str, path: Path, file_format: str | None = None, progress: Callable[[str], None] = print) -> IngestResult:
    """Load a purchases, actions or CDNOW file; `kind` is `purchases`, `actions` or `cdnow`."""
    path = Path(path).resolve()
    if not path.is_file():
        raise InputFileError(f"{path}: file not found.")
    if kind == "cdnow":
        contract, chunks = PURCHASES, read_cdnow(path)
    elif kind in CONTRACTS:
        contract, chunks = CONTRACTS[kind], read_chunks(path, file_format)
    else:
        raise InputFileError(f"Unknown input kind {kind!r}; use purchases, actions or cdnow.")
    return ingest_chunks(client, chunks, contract, str(path), file_sha256(path), progress)
