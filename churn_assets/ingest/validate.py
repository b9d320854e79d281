"""Turn chunks of text rows into typed rows for the raw tables, and rejections with reasons."""

from dataclasses import dataclass

import pandas as pd

from churn_assets.ingest.contract import PURCHASES, FileContract
from churn_assets.ingest.readers import RawChunk, Rejection

EARLIEST_TIME = pd.Timestamp("1970-01-01", tz="UTC")
LATEST_TIME = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass
class ValidChunk:
    """Rows ready to insert (typed, with ids) and the rows rejected from the same chunk."""

    rows: pd.DataFrame
    rejections: list[Rejection]


class OccurrenceCounter:
    """Number repeated rows within one file, so identical lines keep distinct derived ids.

    NOTE: it keeps one entry per distinct row hash of the file, about 100 bytes each.
    """

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}
        self.given_ids: set[str] = set()

    def number(self, hashes: pd.Series) -> pd.Series:
        within_chunk = hashes.groupby(hashes).cumcount() + 1
        earlier = hashes.map(lambda value: self._seen.get(value, 0))
        occurrence = within_chunk + earlier
        for value, count in hashes.value_counts().items():
            self._seen[value] = self._seen.get(value, 0) + count
        return occurrence


def _blank_to_na(text: pd.Series) -> pd.Series:
    return text.where(text.notna() & (text.str.len() > 0))


def _parse_times(text: pd.Series) -> pd.Series:
    times = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return times.where((times >= EARLIEST_TIME) & (times < LATEST_TIME))


def _derive_ids(frame: pd.DataFrame, key_columns: list[str], counter: OccurrenceCounter) -> pd.Series:
    hashes = pd.util.hash_pandas_object(frame[key_columns].astype("string").fillna(""), index=False)
    occurrence = counter.number(hashes)
    hex_hashes = hashes.map(lambda value: f"{value:016x}")
    suffix = occurrence.map(lambda number: "" if number == 1 else f".{number}")
    return hex_hashes + suffix


def validate_chunk(chunk: RawChunk, contract: FileContract, counter: OccurrenceCounter) -> ValidChunk:
    """Check every row of a chunk against the contract; the chunk's frame uses contract column names."""
    frame = chunk.frame
    reasons = pd.Series(pd.NA, index=frame.index, dtype="string")

    def reject(mask: pd.Series, reason: pd.Series | str) -> None:
        new = mask & reasons.isna()
        reasons.loc[new] = reason if isinstance(reason, str) else reason[new]

    def optional_text(name: str) -> pd.Series:
        if name in frame:
            return _blank_to_na(frame[name])
        return pd.Series(pd.NA, index=frame.index, dtype="string")

    user_id = optional_text("user_id")
    reject(user_id.isna(), "missing user_id")

    time_text = optional_text(contract.time_column)
    times = _parse_times(time_text)
    reject(time_text.isna(), f"missing {contract.time_column}")
    reject(times.isna(), "unreadable or out-of-range " + contract.time_column + " '" + time_text.fillna("") + "'")

    is_purchase = contract is PURCHASES
    value_column = "purchase_value" if is_purchase else "value"
    value_text = optional_text(value_column)
    values = pd.to_numeric(value_text, errors="coerce")
    if is_purchase:
        reject(value_text.isna(), "missing purchase_value")
    reject(value_text.notna() & values.isna(), f"unreadable {value_column} '" + value_text.fillna("") + "'")
    reject(values < 0, f"negative {value_column} '" + value_text.fillna("") + "'")
    reject(values >= 1e16, f"{value_column} too large '" + value_text.fillna("") + "'")

    rows = pd.DataFrame(index=frame.index)
    rows["user_id"] = user_id
    rows["discount_code"] = optional_text("discount_code")

    if is_purchase:
        quantity_text = optional_text("quantity")
        quantity = pd.to_numeric(quantity_text, errors="coerce")
        bad_quantity = quantity_text.notna() & (quantity.isna() | (quantity < 0) | (quantity % 1 != 0) | (quantity >= 2**32))
        reject(bad_quantity, "unreadable quantity '" + quantity_text.fillna("") + "'")
        rows["purchased_at"] = times
        rows["purchase_value"] = values.round(2)
        rows["quantity"] = quantity.astype("Int64").where(~bad_quantity)
    else:
        action = optional_text("action")
        reject(action.isna(), "missing action")
        rows["action"] = action
        rows["event_at"] = times
        rows["value"] = values.round(2)

    given_id_text = optional_text(contract.id_column)
    repeated_id = given_id_text.notna() & (given_id_text.duplicated() | given_id_text.isin(counter.given_ids))
    reject(repeated_id, f"duplicate {contract.id_column} '" + given_id_text.fillna("") + "' (an earlier line of this file has it)")
    counter.given_ids.update(given_id_text[reasons.isna() & given_id_text.notna()])

    valid = reasons.isna()
    rejections = list(chunk.malformed) + [
        Rejection(int(line), str(text), str(reason))
        for line, text, reason in zip(chunk.line_numbers[~valid], chunk.raw_text_of(~valid), reasons[~valid])
    ]

    rows = rows[valid].copy()
    rows["source_line"] = chunk.line_numbers[valid].astype("int64")
    given_ids = optional_text(contract.id_column)[valid]
    key_columns = [column for column in rows.columns if column != "source_line"]
    derived_ids = _derive_ids(rows, key_columns, counter) if len(rows) else pd.Series([], dtype="string")
    rows[contract.id_column] = given_ids.fillna(derived_ids).astype("string")
    return ValidChunk(rows, rejections)

