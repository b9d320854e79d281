"""Training determinism and the champion gate, on a small synthetic training set in a real warehouse."""

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churn_assets.defs.deployment import registry
from churn_assets.defs.deployment.assets import DeployerResource, DeploymentConfig, deployed_model
from churn_assets.defs.deployment.gate import decide_promotion
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.training.artifacts import TrainedModel, trained_model_from_outcome
from churn_assets.training.features import FEATURE_COLUMNS, read_training_set
from churn_assets.training.model import Hyperparameters
from churn_assets.training.train import MODEL_NAME, train_and_evaluate
from churn_assets.warehouse.schema import ensure_pipeline_tables

pytestmark = pytest.mark.slow

SMALL_MODEL = Hyperparameters(hidden_units=(8,), epochs=4, batch_size=256, early_stopping_patience=2)


def synthetic_training_set(users: int = 1500, seed: int = 3) -> pd.DataFrame:
    """Three snapshots whose churn label depends on recency and recent purchases."""
    generator = np.random.default_rng(seed)
    frames = []
    for as_of, split in [("2024-01-01", "train"), ("2024-04-01", "train"), ("2024-07-01", "evaluation")]:
        frame = pd.DataFrame({name: generator.integers(0, 30, users).astype(float) for name in FEATURE_COLUMNS})
        frame["days_since_last_purchase"] = generator.integers(1, 200, users)
        frame["days_since_first_purchase"] = frame["days_since_last_purchase"] + generator.integers(0, 200, users)
        frame["count_purchase_days_total"] = generator.integers(1, 10, users)
        risk = 1 / (1 + np.exp(-(frame["days_since_last_purchase"] - 90) / 25 + 0.1 * frame["count_purchases_30d"]))
        frame["is_churned"] = (generator.random(users) < risk).astype("uint8")
        frame["user_id"] = [f"u{index}" for index in range(users)]
        frame["as_of_date"] = pd.Timestamp(as_of).date()
        frame["split"] = split
        frame["label_window_days"] = 90
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def training_client(client):
    ensure_pipeline_tables(client)
    frame = synthetic_training_set()
    columns = ", ".join(f"`{name}` Float64" for name in FEATURE_COLUMNS)
    client.command(
        f"CREATE TABLE analytics.churn_training_set (user_id String, as_of_date Date, split String, "
        f"label_window_days UInt32, is_churned UInt8, {columns}) ENGINE = MergeTree ORDER BY (as_of_date, user_id)"
    )
    client.insert_arrow("analytics.churn_training_set", pa.Table.from_pandas(frame, preserve_index=False))
    return client


def train_model(table: pa.Table, version: str, artifact_root, invert_training_labels: bool = False) -> TrainedModel:
    if invert_training_labels:
        labels = table.column("is_churned").to_numpy()
        is_training = (table.column("split").to_numpy(zero_copy_only=False) == "train")
        flipped = np.where(is_training, 1 - labels, labels).astype(np.uint8)
        table = table.set_column(table.schema.get_field_index("is_churned"), "is_churned", pa.array(flipped))
    outcome = train_and_evaluate(table, SMALL_MODEL, log=lambda message: None)
    artifact_dir = artifact_root / version
    outcome.model.export(str(artifact_dir / "saved_model"), format="tf_saved_model", verbose=False)
    return trained_model_from_outcome(version, artifact_dir, outcome, FEATURE_COLUMNS)


def deploy(trained: TrainedModel, margin: float = 0.0) -> dg.MaterializeResult:
    context = dg.build_asset_context()
    return deployed_model(
        context,
        config=DeploymentConfig(promotion_margin=margin),
        churn_model=trained,
        deployer=DeployerResource(),
        warehouse=WarehouseResource(),
    )


def metadata_value(result: dg.MaterializeResult, key: str):
    value = result.metadata[key]
    return getattr(value, "value", value)


def test_gate_decisions():
    assert decide_promotion(0.7, None, 0.01).promote
    assert decide_promotion(0.75, 0.7, 0.01).promote
    assert not decide_promotion(0.705, 0.7, 0.01).promote
    assert not decide_promotion(0.7, 0.7, 0.0).promote


def test_training_twice_same_auc(training_client):
    table = read_training_set(training_client)
    first = train_and_evaluate(table, SMALL_MODEL, log=lambda message: None)
    second = train_and_evaluate(table, SMALL_MODEL, log=lambda message: None)
    assert round(first.metrics[MODEL_NAME]["roc_auc"], 3) == round(second.metrics[MODEL_NAME]["roc_auc"], 3)
    assert first.metrics[MODEL_NAME]["roc_auc"] > 0.7


def test_worse_challenger_stays_out(training_client, tmp_path):
    table = read_training_set(training_client)
    good = train_model(table, "good-model", tmp_path / "candidates")
    worse = train_model(table, "worse-model", tmp_path / "candidates", invert_training_labels=True)
    training_client.close()

    first = deploy(good)
    second = deploy(worse)

    assert metadata_value(first, "promoted") is True
    assert metadata_value(second, "promoted") is False
    assert metadata_value(second, "serving_model_version") == "good-model"
    from churn_assets.warehouse import open_client

    with open_client() as client:
        champion = registry.current_champion(client)
        statuses = dict(client.query("SELECT model_version, status FROM analytics.model_registry FINAL").result_rows)
        training_window = client.query(
            "SELECT toString(training_cutoffs) FROM analytics.model_registry FINAL WHERE model_version = 'good-model'"
        ).result_rows[0][0]
    assert training_window == "['2024-01-01','2024-04-01']"
    assert champion.model_version == "good-model"
    assert statuses == {"good-model": "champion", "worse-model": "challenger"}


def test_better_challenger_replaces_champion(training_client, tmp_path):
    table = read_training_set(training_client)
    worse = train_model(table, "worse-model", tmp_path / "candidates", invert_training_labels=True)
    good = train_model(table, "good-model", tmp_path / "candidates")
    training_client.close()

    deploy(worse)
    result = deploy(good)

    assert metadata_value(result, "promoted") is True
    from churn_assets.warehouse import open_client

    with open_client() as client:
        statuses = dict(client.query("SELECT model_version, status FROM analytics.model_registry FINAL").result_rows)
    assert statuses == {"good-model": "champion", "worse-model": "retired"}
