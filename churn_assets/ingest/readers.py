"""Read input files in chunks of text columns, with the line number and raw text of each row.

Every value stays text here so that validation, not the reader, decides what is unreadable.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn_assets.ingest.contract import InputFileError

CHUNK_ROWS = 500_000


@dataclass
class Rejection:
    """One row that could not be loaded, with where it came from and why."""

    line_number: int
    raw_text: str
    reason: str


@dataclass
class RawChunk:
    """Rows of one file as text, with their line numbers and raw text.

    `raw_text` is None when the raw text is rebuilt only for rejected rows (CSV), to save time.
    """

    frame: pd.DataFrame
    line_numbers: pd.Series
    raw_text: pd.Series | None
    malformed: list[Rejection] = field(default_factory=list)

    def raw_text_of(self, mask: pd.Series) -> pd.Series:
        """Return the raw text of the rows selected by `mask`."""
        if self.raw_text is not None:
            return self.raw_text[mask]
        return rows_as_csv_text(self.frame[mask])


def detect_format(path: Path) -> str:
    """Guess the file format from its name: csv, parquet or jsonl."""
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise InputFileError(f"{path}: cannot tell the format from the name; use .csv, .parquet or .jsonl.")


def read_chunks(path: Path, file_format: str | None = None) -> Iterator[RawChunk]:
    """Yield the rows of a CSV, Parquet or JSON Lines file as chunks of text columns."""
    if not path.is_file():
        raise InputFileError(f"{path}: file not found.")
    file_format = file_format or detect_format(path)
    readers = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_json_lines}
    if file_format not in readers:
        raise InputFileError(f"Unknown format {file_format!r}; use csv, parquet or jsonl.")
    return readers[file_format](path)


def _frame_to_text(frame: pd.DataFrame) -> pd.DataFrame:
    text = frame.astype("string")
    return text.apply(lambda column: column.str.strip())


def rows_as_csv_text(frame: pd.DataFrame) -> pd.Series:
    """Rebuild each row as one CSV line (quoted where needed), for the rejected-rows table."""
    texts = []
    for values in frame.itertuples(index=False):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(["" if pd.isna(value) else value for value in values])
        texts.append(buffer.getvalue())
    return pd.Series(texts, index=frame.index, dtype="string")


def _read_csv(path: Path) -> Iterator[RawChunk]:
    malformed: list[Rejection] = []
    blank_lines: list[int] = []

    def keep_malformed(row) -> str:
        # Blank lines are parsed (not ignored) so that line numbers stay right, then dropped here.
        if not row.text.strip():
            blank_lines.append(row.number or 0)
        else:
            malformed.append(Rejection(row.number or 0, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    read_options = pa_csv.ReadOptions(block_size=64 << 20, use_threads=False)
    try:
        header = pa_csv.open_csv(
            path, read_options=read_options, parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip")
        ).schema.names
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise InputFileError(f"{path}: column names appear more than once: {', '.join(repeated)}.")
        reader = pa_csv.open_csv(
            path,
            read_options=read_options,
            parse_options=pa_csv.ParseOptions(invalid_row_handler=keep_malformed, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: not a readable CSV file ({error}).") from error

    # NOTE: line numbers assume one physical line per record; quoted fields with
    # embedded newlines shift the numbers of later rows.
    next_line = 2
    try:
        for batch in reader:
            frame = _frame_to_text(batch.to_pandas())
            chunk_malformed, malformed[:] = list(malformed), []
            skipped = {rejection.line_number for rejection in chunk_malformed} | set(blank_lines)
            candidates = range(next_line, next_line + len(frame) + len(chunk_malformed) + len(blank_lines))
            blank_lines.clear()
            numbers = [number for number in candidates if number not in skipped][: len(frame)]
            next_line = candidates.stop
            line_numbers = pd.Series(numbers, index=frame.index, dtype="int64")
            yield RawChunk(frame, line_numbers, None, chunk_malformed)
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: CSV reading stopped near line {next_line} ({error}).") from error


def _read_parquet(path: Path) -> Iterator[RawChunk]:
    try:
        parquet_file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputFileError(f"{path}: not a readable Parquet file ({error}).") from error

    next_row = 1
    batches = parquet_file.iter_batches(batch_size=CHUNK_ROWS)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            frame = _frame_to_text(batch.to_pandas())
        except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
            raise InputFileError(f"{path}: Parquet reading stopped near row {next_row} ({error}).") from error
        line_numbers = pd.Series(range(next_row, next_row + len(frame)), index=frame.index)
        next_row += len(frame)
        raw_text = pd.Series(frame.to_json(orient="records", lines=True).rstrip("\n").split("\n"), index=frame.index)
        yield RawChunk(frame, line_numbers, raw_text)


def _read_json_lines(path: Path) -> Iterator[RawChunk]:
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as error:
        raise InputFileError(f"{path}: cannot open ({error}).") from error

    with handle:
        records, numbers, texts, malformed = [], [], [], []
        try:
            for line_number, line in enumerate(handle, start=1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    malformed.append(Rejection(line_number, text, f"invalid JSON: {error.msg}"))
                    continue
                if not isinstance(record, dict):
                    malformed.append(Rejection(line_number, text, "invalid JSON: a line must hold one object"))
                    continue
                records.append(record)
                numbers.append(line_number)
                texts.append(text)
                if len(records) >= CHUNK_ROWS:
                    yield _json_chunk(records, numbers, texts, malformed)
                    records, numbers, texts, malformed = [], [], [], []
        except UnicodeDecodeError as error:
            raise InputFileError(f"{path}: not UTF-8 text ({error}).") from error
        if records or malformed:
            yield _json_chunk(records, numbers, texts, malformed)


def _json_chunk(records, numbers, texts, malformed) -> RawChunk:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.apply(lambda column: column.map(_json_value_to_text)).astype("string") if len(frame) else frame
    return RawChunk(frame, pd.Series(numbers, index=frame.index), pd.Series(texts, index=frame.index), list(malformed))


def _json_value_to_text(value):
    # pandas fills keys missing from a line with NaN; those are absent values, not the text "nan".
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).strip()


def read_cdnow(path: Path) -> Iterator[RawChunk]:
    """Read the CDNOW master file: whitespace-separated id, YYYYMMDD date, CD count, dollar value."""
    if not path.is_file():
        raise InputFileError(f"{path}: file not found.")
    columns = ("user_id", "purchase_date", "quantity", "purchase_value")
    rows, numbers, texts, malformed = [], [], [], []
    with path.open("rb") as handle:
        for line_number, line_bytes in enumerate(handle, start=1):
            try:
                text = line_bytes.decode("ascii").rstrip("\r\n")
            except UnicodeDecodeError:
                malformed.append(Rejection(line_number, line_bytes.decode("ascii", errors="replace").rstrip("\r\n"), "not ASCII text"))
                continue
            fields = text.split()
            if line_number == 1 and fields and not fields[0].isdigit():
                continue
            if not fields:
                continue
            if len(fields) != len(columns):
                malformed.append(Rejection(line_number, text, f"expected {len(columns)} fields, found {len(fields)}"))
                continue
            rows.append(fields)
            numbers.append(line_number)
            texts.append(text)
    if not rows and not malformed:
        raise InputFileError(f"{path}: no CDNOW rows found.")
    frame = pd.DataFrame(rows, columns=list(columns), dtype="string")
    frame["purchase_date"] = _cdnow_dates(frame["purchase_date"])
    yield RawChunk(frame, pd.Series(numbers, index=frame.index), pd.Series(texts, index=frame.index), malformed)


def _cdnow_dates(text: pd.Series) -> pd.Series:
    dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    iso = dates.dt.strftime("%Y-%m-%d").astype("string")
    return iso.where(dates.notna(), text)
