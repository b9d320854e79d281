"""Columns of the input files, as the data contract names them."""

import re
from dataclasses import dataclass


class InputFileError(ValueError):
    """Raised when a file as a whole cannot be loaded (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class FileContract:
    """The columns one kind of input file has, and the raw table it loads into."""

    table: str
    id_column: str
    time_column: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


PURCHASES = FileContract(
    table="purchases",
    id_column="purchase_id",
    time_column="purchase_date",
    required=("user_id", "purchase_date", "purchase_value"),
    optional=("purchase_id", "discount_code", "quantity"),
)

USER_ACTIONS = FileContract(
    table="user_actions",
    id_column="event_id",
    time_column="event_time",
    required=("user_id", "action", "event_time"),
    optional=("event_id", "discount_code", "value"),
)

CONTRACTS = {"purchases": PURCHASES, "actions": USER_ACTIONS, "user_actions": USER_ACTIONS}


def normalise_name(name: str) -> str:
    """Match column names case-insensitively and ignoring underscores, spaces and dashes."""
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def map_columns(file_columns: list[str], contract: FileContract, file_name: str) -> dict[str, str]:
    """Return {file column: contract column}; raise when a required column is missing."""
    contract_columns = {normalise_name(column): column for column in contract.columns}
    normalised = [normalise_name(column) for column in file_columns]
    repeated = sorted({column for column in file_columns if normalised.count(normalise_name(column)) > 1})
    if repeated:
        raise InputFileError(f"{file_name}: column names appear more than once: {', '.join(map(str, repeated))}.")
    mapping: dict[str, str] = {}
    for column in file_columns:
        key = normalise_name(column)
        if key in contract_columns and contract_columns[key] not in mapping.values():
            mapping[column] = contract_columns[key]

    missing = [column for column in contract.required if column not in mapping.values()]
    if missing:
        raise InputFileError(
            f"{file_name}: missing required column(s) {', '.join(missing)} for {contract.table}; "
            f"found {', '.join(map(str, file_columns)) or 'no columns'}."
        )
    return mapping
