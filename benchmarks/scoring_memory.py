"""Benchmark: score N synthetic users with the churn_scores asset and report time and peak memory.

Usage: python benchmarks/scoring_memory.py --users 1000000 [--chunk-rows 200000]
It builds a throwaway embedded warehouse under a temporary folder, so it never touches yours.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="number of users to score")
    parser.add_argument("--chunk-rows", type=int, default=200_000, help="users per scoring chunk")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="churn-scoring-benchmark-"))
    os.environ["CHURN_WAREHOUSE_URL"] = f"chdb://{folder / 'warehouse'}"
    os.environ["CHURN_MODEL_DIR"] = str(folder / "models")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

    import dagster as dg
    import numpy as np

    from churn_assets.defs.deployment import registry
    from churn_assets.defs.resources import WarehouseResource
    from churn_assets.defs.scoring.assets import churn_scores
    from churn_assets.defs.training.artifacts import TrainedModel
    from churn_assets.training.features import FEATURE_COLUMNS, feature_schema_hash
    from churn_assets.training.model import Hyperparameters, build_model
    from churn_assets.warehouse import open_client
    from churn_assets.warehouse.schema import ensure_pipeline_tables

    started = time.monotonic()
    with open_client() as client:
        ensure_pipeline_tables(client)
        columns = ", ".join(f"`{name}` Float64" for name in FEATURE_COLUMNS)
        client.command(f"CREATE TABLE analytics.user_features (user_id String, feature_date Date, {columns}) ENGINE = MergeTree ORDER BY user_id")
        generated = ", ".join(f"toFloat64(rand({index}) % 100) AS `{name}`" for index, name in enumerate(FEATURE_COLUMNS))
        client.command(
            f"INSERT INTO analytics.user_features SELECT concat('user-', toString(number)), toDate('2024-07-01'), {generated} "
            "FROM numbers({users:UInt64})",
            parameters={"users": arguments.users},
        )
    print(f"Generated {arguments.users} users in {time.monotonic() - started:.1f} s")

    sample = {name: np.random.default_rng(0).random((1000, 1)).astype(np.float32) * 100 for name in FEATURE_COLUMNS}
    model = build_model(FEATURE_COLUMNS, sample, Hyperparameters(hidden_units=(32, 16)))
    artifact_dir = folder / "models" / "candidates" / "benchmark-model"
    model.export(str(artifact_dir / "saved_model"), format="tf_saved_model", verbose=False)
    trained = TrainedModel("benchmark-model", str(artifact_dir), list(FEATURE_COLUMNS), feature_schema_hash(FEATURE_COLUMNS),
                           0, 0, 0, "2024-07-01", {"roc_auc": 0.5}, {"recency_rule": {"roc_auc": 0.5}})
    with open_client() as client:
        registry.register(client, trained, artifact_dir.as_uri(), "local", registry.CHAMPION)

    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    result = dg.materialize(
        [churn_scores],
        resources={"warehouse": WarehouseResource()},
        run_config={"ops": {"churn_scores": {"config": {"chunk_rows": arguments.chunk_rows}}}},
    )
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open_client() as client:
        scored = client.command("SELECT count() FROM analytics.latest_churn_scores")
    print(f"success={result.success} users_scored={scored} seconds={seconds:.1f} "
          f"users_per_second={scored / seconds:,.0f} peak_rss_mb={peak:.0f} (before scoring {memory_before:.0f})")
    return 0 if result.success and scored == arguments.users else 1


if __name__ == "__main__":
    sys.exit(main())
