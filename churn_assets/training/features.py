"""The model's feature columns and reading them from the warehouse in columnar form."""

import hashlib

import numpy as np
import pyarrow as pa

FEATURE_COLUMNS: tuple[str, ...] = (
    "tenure_days",
    "days_since_last_purchase",
    "days_since_last_login",
    "days_since_last_cart_add",
    "days_since_first_purchase",
    "has_purchased",
    "count_purchases_total",
    "count_purchase_days_total",
    "count_purchases_7d",
    "count_purchases_30d",
    "count_purchases_90d",
    "count_logins_30d",
    "count_cart_adds_30d",
    "count_active_days_90d",
    "purchase_value_total",
    "purchase_value_90d",
    "average_purchase_value",
    "purchase_trend_30d",
    "login_trend_30d",
    "cart_abandonment_rate_30d",
    "count_discount_purchases_total",
    "discount_purchase_share",
)

LABEL_COLUMN = "is_churned"


class FeatureSchemaError(ValueError):
    """Raised when a table's columns do not match the features a model was trained on."""


def feature_schema_hash(columns: tuple[str, ...] | list[str]) -> str:
    """Return a short, order-sensitive fingerprint of the feature list."""
    return hashlib.sha256("\n".join(columns).encode()).hexdigest()[:16]


def check_feature_columns(table_columns: list[str], expected: tuple[str, ...] | list[str], table: str) -> None:
    """Raise FeatureSchemaError naming the columns a model needs but the table lacks."""
    missing = [column for column in expected if column not in table_columns]
    if missing:
        raise FeatureSchemaError(
            f"{table} lacks feature column(s) the model was trained on: {', '.join(missing)}. "
            "Rebuild the dbt marts or retrain the model."
        )


def feature_select_sql(columns: tuple[str, ...] | list[str]) -> str:
    """Return the select list that casts every feature to Float32 under its own name."""
    return ", ".join(f"toFloat32(`{column}`) AS `{column}`" for column in columns)


def arrow_to_feature_arrays(table: pa.Table, columns: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """Turn an Arrow table into {feature: float32 column vector} for the model's named inputs."""
    return {
        column: table.column(column).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)
        for column in columns
    }


def read_training_set(client, columns: tuple[str, ...] = FEATURE_COLUMNS) -> pa.Table:
    """Read the training set with features, label, split and snapshot date as an Arrow table."""
    present = [name for (name,) in client.query(
        "SELECT name FROM system.columns WHERE database = 'analytics' AND table = 'churn_training_set'"
    ).result_rows]
    if not present:
        raise FeatureSchemaError("analytics.churn_training_set does not exist; run the dbt models first.")
    check_feature_columns(present, columns, "analytics.churn_training_set")
    return client.query_arrow(
        f"SELECT user_id, as_of_date, split, label_window_days, toUInt8({LABEL_COLUMN}) AS {LABEL_COLUMN}, "
        f"{feature_select_sql(columns)} "
        "FROM analytics.churn_training_set ORDER BY as_of_date, user_id"
    )
