"""Turn a day's events into Arrow tables in the column layout of raw.purchases and raw.user_actions.

Event ids are `sim-<seed>-<day, 5 digits>-a<n>` for actions and `...-p<n>` for purchases, with n
the event's position in the day as at least 8 digits. They depend only on the seed and the day,
so simulating a day again yields the same ids. Ids of later days sort after those of earlier
days, and a block of days arrives already sorted, which makes inserts into tables ordered by
id faster.
"""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_assets.simulate.events import ACTION_NAMES, DayEvents

TIMESTAMP = pa.timestamp("ms", tz="UTC")
MONEY = pa.decimal128(18, 2)


def id_prefix(seed: int) -> str:
    return f"sim-{seed}-"


def day_id_prefix(seed: int, day: int) -> str:
    return f"{id_prefix(seed)}{day:05d}-"


@dataclass(frozen=True)
class TableContext:
    """Values shared by every row a run writes."""

    seed: int
    start_ms: int
    user_ids: pa.Array
    offer_codes: pa.Array
    source_file: str
    ingest_id: str
    loaded_at: datetime


def money(cents: np.ndarray) -> pa.Array:
    """Return whole cents as Decimal(18, 2) values without a detour through floats."""
    # Decimal128 stores each value as a 128-bit little-endian integer: the low word, then the sign.
    words = np.zeros((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(MONEY, len(cents), [None, pa.py_buffer(words)])


SEQUENCE_DIGITS = 8


def _ids(prefix: str, count: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, SEQUENCE_DIGITS, "0"), "")


def _repeated(value, count: int, type_) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), count)


def _times(context: TableContext, day: int, seconds: np.ndarray) -> pa.Array:
    day_start = context.start_ms + day * 86_400_000
    return pa.array(day_start + seconds.astype(np.int64) * 1000, TIMESTAMP)


def purchase_table(events: DayEvents, context: TableContext) -> pa.Table:
    """Return the day's purchases with the columns of raw.purchases."""
    count = len(events.purchase_users)
    has_code = events.purchase_offer >= 0
    codes = context.offer_codes.take(pa.array(np.where(has_code, events.purchase_offer, 0), mask=~has_code))
    return pa.table({
        "purchase_id": _ids(day_id_prefix(context.seed, events.day) + "p", count),
        "user_id": context.user_ids.take(pa.array(events.purchase_users)),
        "purchased_at": _times(context, events.day, events.purchase_seconds),
        "purchase_value": money(events.purchase_cents),
        "quantity": pa.nulls(count, pa.uint32()),
        "discount_code": codes,
        "source_file": _repeated(context.source_file, count, pa.string()),
        "source_line": pa.array(np.zeros(count, dtype=np.uint64)),
        "ingest_id": _repeated(context.ingest_id, count, pa.string()),
        "loaded_at": _repeated(context.loaded_at, count, TIMESTAMP),
    })


def action_table(events: DayEvents, context: TableContext) -> pa.Table:
    """Return the day's logins and cart adds with the columns of raw.user_actions."""
    count = len(events.action_users)
    return pa.table({
        "event_id": _ids(day_id_prefix(context.seed, events.day) + "a", count),
        "user_id": context.user_ids.take(pa.array(events.action_users)),
        "action": pa.array(list(ACTION_NAMES), pa.string()).take(pa.array(events.action_kinds)),
        "event_at": _times(context, events.day, events.action_seconds),
        "discount_code": pa.nulls(count, pa.string()),
        "value": pa.nulls(count, MONEY),
        "source_file": _repeated(context.source_file, count, pa.string()),
        "source_line": pa.array(np.zeros(count, dtype=np.uint64)),
        "ingest_id": _repeated(context.ingest_id, count, pa.string()),
        "loaded_at": _repeated(context.loaded_at, count, TIMESTAMP),
    })
