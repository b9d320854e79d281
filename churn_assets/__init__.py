"""Churn-prevention pipeline: dbt marts in ClickHouse, Dagster assets for training, scoring and offers."""
