"""Tables the pipeline writes itself: raw events, rejected rows and ingest runs."""

RAW_DATABASE = "raw"
ANALYTICS_DATABASE = "analytics"

RAW_TABLES = {
    "purchases": """
        CREATE TABLE IF NOT EXISTS raw.purchases (
            purchase_id String,
            user_id String,
            purchased_at DateTime64(3, 'UTC'),
            purchase_value Decimal(18, 2),
            quantity Nullable(UInt32),
            discount_code Nullable(String),
            source_file String,
            source_line UInt64,
            ingest_id String,
            loaded_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY purchase_id
    """,
    "user_actions": """
        CREATE TABLE IF NOT EXISTS raw.user_actions (
            event_id String,
            user_id String,
            action LowCardinality(String),
            event_at DateTime64(3, 'UTC'),
            discount_code Nullable(String),
            value Nullable(Decimal(18, 2)),
            source_file String,
            source_line UInt64,
            ingest_id String,
            loaded_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY event_id
    """,
    "rejected_rows": """
        CREATE TABLE IF NOT EXISTS raw.rejected_rows (
            ingest_id String,
            target_table LowCardinality(String),
            source_file String,
            file_sha256 String,
            line_number UInt64,
            raw_text String,
            reason String,
            rejected_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY (file_sha256, target_table, line_number, reason)
    """,
    "ingest_runs": """
        CREATE TABLE IF NOT EXISTS raw.ingest_runs (
            ingest_id String,
            target_table LowCardinality(String),
            source_file String,
            file_sha256 String,
            rows_read UInt64,
            rows_loaded UInt64,
            rows_already_present UInt64,
            rows_rejected UInt64,
            started_at DateTime64(3, 'UTC'),
            finished_at DateTime64(3, 'UTC')
        )
        ENGINE = MergeTree
        ORDER BY (started_at, ingest_id)
    """,
}


def ensure_raw_tables(client) -> None:
    """Create the raw database and its tables if they are missing."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {RAW_DATABASE}")
    client.command(f"CREATE DATABASE IF NOT EXISTS {ANALYTICS_DATABASE}")
    for ddl in RAW_TABLES.values():
        client.command(ddl)

PIPELINE_TABLES = {
    "churn_scores": """
        CREATE TABLE IF NOT EXISTS analytics.churn_scores (
            scoring_run_id String,
            user_id String,
            churn_probability Float64,
            model_version String,
            feature_date Date,
            scored_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY (scoring_run_id, user_id)
    """,
    "scoring_runs": """
        CREATE TABLE IF NOT EXISTS analytics.scoring_runs (
            scoring_run_id String,
            model_version String,
            feature_date Date,
            count_users UInt64,
            completed_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY scoring_run_id
    """,
    "discount_offers": """
        CREATE TABLE IF NOT EXISTS analytics.discount_offers (
            offer_id String,
            campaign_id String,
            user_id String,
            offer_group LowCardinality(String),
            tier LowCardinality(String),
            discount_percent UInt8,
            discount_code String,
            churn_probability Float64,
            model_version String,
            scoring_run_id String,
            created_at DateTime64(3, 'UTC'),
            expires_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree
        ORDER BY (campaign_id, user_id)
    """,
    "model_evaluations": """
        CREATE TABLE IF NOT EXISTS analytics.model_evaluations (
            model_version String,
            evaluation_cutoff Date,
            scorer LowCardinality(String),
            is_baseline UInt8,
            metric LowCardinality(String),
            value Float64,
            evaluated_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree(evaluated_at)
        ORDER BY (model_version, scorer, metric)
    """,
    "model_registry": """
        CREATE TABLE IF NOT EXISTS analytics.model_registry (
            model_version String,
            status LowCardinality(String),
            artifact_uri String,
            deployment_target LowCardinality(String),
            feature_columns Array(String),
            feature_schema_hash String,
            training_rows UInt64,
            evaluation_rows UInt64,
            evaluation_cutoff Date,
            training_cutoffs Array(Date),
            roc_auc Float64,
            baseline_roc_auc Float64,
            registered_at DateTime64(3, 'UTC'),
            status_changed_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree(status_changed_at)
        ORDER BY model_version
    """,
}


def ensure_pipeline_tables(client) -> None:
    """Create every table the pipeline writes (raw events and pipeline outputs) if missing."""
    ensure_raw_tables(client)
    for ddl in PIPELINE_TABLES.values():
        client.command(ddl)
    # Registries created before the training window was recorded get the column added.
    client.command("ALTER TABLE analytics.model_registry ADD COLUMN IF NOT EXISTS training_cutoffs Array(Date) AFTER evaluation_cutoff")
