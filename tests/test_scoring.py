"""Scoring runs are atomic: a crash after the first chunk leaves the latest scores as they were."""

from datetime import date, datetime

import dagster as dg
import pyarrow as pa
import pytest

from churn_assets.defs.scoring import writer
from churn_assets.defs.scoring.assets import churn_scores
from churn_assets.defs.resources import WarehouseResource
from churn_assets.training.features import read_training_set
from churn_assets.warehouse import open_client
from test_model_gate import deploy, synthetic_training_set, train_model, training_client  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def scoring_warehouse(training_client, tmp_path):
    """A champion model and a user_features table of 1,500 users."""
    table = read_training_set(training_client)
    trained = train_model(table, "champion-model", tmp_path / "candidates")
    features = synthetic_training_set().query("split == 'evaluation'").drop(
        columns=["split", "as_of_date", "is_churned", "label_window_days"]
    )
    features["feature_date"] = date(2024, 7, 1)
    columns = ", ".join(f"`{name}` Float64" for name in features.columns if name not in ("user_id", "feature_date"))
    training_client.command(
        f"CREATE TABLE analytics.user_features (user_id String, feature_date Date, {columns}) ENGINE = MergeTree ORDER BY user_id"
    )
    training_client.insert_arrow("analytics.user_features", pa.Table.from_pandas(features, preserve_index=False))
    training_client.close()
    deploy(trained)


def score(chunk_rows: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [churn_scores],
        resources={"warehouse": WarehouseResource()},
        run_config={"ops": {"churn_scores": {"config": {"chunk_rows": chunk_rows}}}},
        raise_on_error=False,
    )


def latest_scores() -> list[tuple]:
    with open_client() as client:
        return client.query("SELECT scoring_run_id, user_id, churn_probability FROM analytics.latest_churn_scores ORDER BY user_id").result_rows


def test_crash_after_first_chunk_keeps_previous_scores(scoring_warehouse, monkeypatch):
    assert score(chunk_rows=500).success
    before = latest_scores()
    assert len(before) == 1500

    calls = {"count": 0}
    real_write_chunk = writer.write_chunk

    def failing_write_chunk(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise RuntimeError("injected fault after the first chunk")
        return real_write_chunk(*args, **kwargs)

    monkeypatch.setattr(writer, "write_chunk", failing_write_chunk)
    failed = score(chunk_rows=500)

    assert not failed.success
    assert "injected fault" in str(failed.get_step_failure_events()[0].step_failure_data.error)
    assert calls["count"] == 2
    assert latest_scores() == before


def test_partial_rows_of_run_discarded(scoring_warehouse):
    with open_client() as client:
        writer.ensure_latest_scores_view(client)
        client.insert_arrow(
            "analytics.churn_scores",
            pa.table({
                "scoring_run_id": ["run-x", "run-x"], "user_id": ["u1", "u2"], "churn_probability": [0.1, 0.2],
                "model_version": ["m", "m"], "feature_date": pa.array([date(2024, 7, 1)] * 2, pa.date32()),
                "scored_at": pa.array([datetime(2024, 7, 1)] * 2, pa.timestamp("ms", tz="UTC")),
            }),
        )
        removed = writer.discard_partial_run(client, "run-x")
        remaining = client.command("SELECT count() FROM analytics.churn_scores WHERE scoring_run_id = 'run-x'")
    assert removed == 2
    assert remaining == 0


def test_scoring_rejects_missing_column(scoring_warehouse):
    with open_client() as client:
        client.command("ALTER TABLE analytics.user_features DROP COLUMN count_purchases_90d")
    result = score(chunk_rows=500)
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert not result.success
    assert "count_purchases_90d" in message


def test_scoring_rejects_changed_column_type(scoring_warehouse):
    with open_client() as client:
        client.command("ALTER TABLE analytics.user_features MODIFY COLUMN tenure_days String")
    result = score(chunk_rows=500)
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert not result.success
    assert "tenure_days (String)" in message
