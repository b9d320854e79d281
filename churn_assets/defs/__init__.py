"""Dagster definitions, one folder per stage of the pipeline."""
