"""Write a scoring run so readers see either the previous complete run or the new complete run.

Score rows carry their run id; a run becomes visible only when its row lands in
analytics.scoring_runs, which the latest-scores view reads. A crash before that leaves the
view on the previous run, and a retry of the same run id first removes its partial rows.
"""

from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa

LATEST_SCORES_VIEW = """
    CREATE VIEW IF NOT EXISTS analytics.latest_churn_scores AS
    SELECT scoring_run_id, user_id, churn_probability, model_version, feature_date, scored_at
    FROM analytics.churn_scores FINAL
    WHERE scoring_run_id = (
        SELECT argMax(scoring_run_id, completed_at) FROM analytics.scoring_runs FINAL
    )
"""


def ensure_latest_scores_view(client) -> None:
    client.command(LATEST_SCORES_VIEW)


def is_run_published(client, scoring_run_id: str) -> bool:
    """Return whether this run already completed, so scoring it again must change nothing."""
    return bool(client.command(
        "SELECT count() FROM analytics.scoring_runs WHERE scoring_run_id = {run:String}",
        parameters={"run": scoring_run_id},
    ))


def discard_partial_run(client, scoring_run_id: str) -> int:
    """Delete rows an earlier attempt of this run left behind; return how many there were."""
    existing = client.command(
        "SELECT count() FROM analytics.churn_scores WHERE scoring_run_id = {run:String}",
        parameters={"run": scoring_run_id},
    )
    if int(existing):
        client.command(
            "DELETE FROM analytics.churn_scores WHERE scoring_run_id = {run:String}",
            parameters={"run": scoring_run_id},
            settings={"lightweight_deletes_sync": 2},
        )
    return int(existing)


def write_chunk(client, scoring_run_id: str, model_version: str, feature_date: date, user_ids: pa.Array, probabilities: np.ndarray, scored_at: datetime) -> None:
    count = len(probabilities)
    client.insert_arrow(
        "analytics.churn_scores",
        pa.table({
            "scoring_run_id": pa.array([scoring_run_id] * count, pa.string()),
            "user_id": user_ids,
            "churn_probability": pa.array(probabilities, pa.float64()),
            "model_version": pa.array([model_version] * count, pa.string()),
            "feature_date": pa.array([feature_date] * count, pa.date32()),
            "scored_at": pa.array([scored_at] * count, pa.timestamp("ms", tz="UTC")),
        }),
    )


def complete_run(client, scoring_run_id: str, model_version: str, feature_date: date, count_users: int) -> None:
    """Make the run visible through analytics.latest_churn_scores."""
    client.insert(
        "analytics.scoring_runs",
        [[scoring_run_id, model_version, feature_date, count_users, datetime.now(timezone.utc)]],
        column_names=["scoring_run_id", "model_version", "feature_date", "count_users", "completed_at"],
    )
