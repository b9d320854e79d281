"""Train the Keras churn model and evaluate it against baselines on the held-out cutoff."""

import time
from datetime import date, datetime, timezone

import dagster as dg
import numpy as np

from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.retries import retried_on_passing_failures
from churn_assets.defs.training.artifacts import TrainedModel, model_root, trained_model_from_outcome
from churn_assets.training.evaluation import (
    calibration_plot_markdown,
    lift_plot_markdown,
    metrics_table_markdown,
    precision_recall_at,
    roc_plot_markdown,
    score_metrics,
)
from churn_assets.training.features import FEATURE_COLUMNS, read_training_set
from churn_assets.training.model import Hyperparameters
from churn_assets.training.train import MODEL_NAME, TrainingOutcome, train_and_evaluate
from churn_assets.warehouse.schema import ensure_pipeline_tables


class TrainingConfig(dg.Config):
    """Hyperparameters of the churn model, and the offer threshold its precision and recall are reported at."""

    hidden_units: list[int] = [32, 16]
    dropout: float = 0.1
    learning_rate: float = 0.003
    epochs: int = 30
    batch_size: int = 512
    early_stopping_patience: int = 4
    offer_threshold: float = 0.8

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(
            hidden_units=tuple(self.hidden_units),
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            batch_size=self.batch_size,
            early_stopping_patience=self.early_stopping_patience,
        )


def add_oracle_scores(client, table, outcome: TrainingOutcome, log) -> None:
    """On a simulated shop, score the evaluation rows with the simulator's true churn probabilities too."""
    from churn_assets.simulate import true_churn_probabilities
    from churn_assets.simulate.sim_tables import read_run

    if read_run(client) is None:
        return
    is_evaluation = table.column("split").to_numpy(zero_copy_only=False) == "evaluation"
    window_days = int(table.column("label_window_days").to_numpy(zero_copy_only=False)[is_evaluation][0])
    oracle = true_churn_probabilities(client, date.fromisoformat(outcome.evaluation_cutoff), window_days)
    by_user = dict(zip(oracle["user_id"], oracle["churn_probability"]))
    user_ids = table.column("user_id").to_numpy(zero_copy_only=False)[is_evaluation]
    if not all(user in by_user for user in user_ids):
        log("The simulator's oracle does not cover every evaluation user; oracle metrics left out")
        return
    outcome.scores["oracle"] = np.array([by_user[user] for user in user_ids], dtype=np.float64)
    outcome.metrics["oracle"] = score_metrics(outcome.evaluation_labels, outcome.scores["oracle"], probabilities=True)


def write_evaluations(client, version: str, outcome: TrainingOutcome) -> int:
    """Store every scorer's metrics in analytics.model_evaluations; return the number of rows."""
    evaluated_at = datetime.now(timezone.utc)
    cutoff = date.fromisoformat(outcome.evaluation_cutoff)
    rows = [
        [version, cutoff, scorer, int(scorer != MODEL_NAME), metric, float(value), evaluated_at]
        for scorer, metrics in outcome.metrics.items()
        for metric, value in metrics.items()
    ]
    client.insert(
        "analytics.model_evaluations", rows,
        column_names=["model_version", "evaluation_cutoff", "scorer", "is_baseline", "metric", "value", "evaluated_at"],
    )
    return len(rows)


@dg.asset(
    deps=["churn_training_set"],
    group_name="model",
    kinds={"tensorflow", "keras"},
    description="Keras churn model trained on earlier snapshots and evaluated on the held-out latest cutoff.",
)
@retried_on_passing_failures
def churn_model(context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource) -> dg.Output[TrainedModel]:
    started = time.monotonic()
    with warehouse.open() as client:
        table = read_training_set(client)
    context.log.info(f"Read {table.num_rows} training-set rows in {time.monotonic() - started:.1f} s")

    import tensorflow as tf

    context.log.info(f"TensorFlow {tf.__version__}")
    outcome = train_and_evaluate(table, config.hyperparameters(), log=context.log.info)
    model_metrics = outcome.metrics[MODEL_NAME]
    model_metrics.update(precision_recall_at(outcome.evaluation_labels, outcome.scores[MODEL_NAME], config.offer_threshold))
    context.log.info(
        "Held-out ROC AUC: " + ", ".join(f"{name} {metrics['roc_auc']:.4f}" for name, metrics in outcome.metrics.items())
    )

    trained_at = datetime.now(timezone.utc)
    version = f"churn-{trained_at:%Y%m%d-%H%M%S}-{context.run_id[:8]}"
    artifact_dir = model_root() / "candidates" / version
    artifact_dir.mkdir(parents=True, exist_ok=True)
    outcome.model.export(str(artifact_dir / "saved_model"), format="tf_saved_model", verbose=False)
    trained = trained_model_from_outcome(version, artifact_dir, outcome, FEATURE_COLUMNS)
    trained.write_description()

    with warehouse.open() as client:
        ensure_pipeline_tables(client)
        add_oracle_scores(client, table, outcome, context.log.info)
        evaluation_rows = write_evaluations(client, version, outcome)
    context.log.info(f"Wrote {evaluation_rows} rows to analytics.model_evaluations for {version}")

    probabilities = {name: outcome.scores[name] for name in (MODEL_NAME, "logistic_regression", "bg_nbd")}
    return dg.Output(
        trained,
        metadata={
            "model_version": version,
            "evaluation_cutoff": outcome.evaluation_cutoff,
            "roc_auc": model_metrics["roc_auc"],
            "recency_baseline_roc_auc": outcome.metrics["recency_rule"]["roc_auc"],
            "logistic_regression_roc_auc": outcome.metrics["logistic_regression"]["roc_auc"],
            "bg_nbd_roc_auc": outcome.metrics["bg_nbd"]["roc_auc"],
            "oracle_roc_auc": outcome.metrics["oracle"]["roc_auc"] if "oracle" in outcome.metrics else float("nan"),
            "pr_auc": model_metrics["pr_auc"],
            "brier_score": model_metrics["brier_score"],
            "top_decile_lift": model_metrics["top_decile_lift"],
            "precision_at_offer_threshold": model_metrics["precision_at_threshold"],
            "recall_at_offer_threshold": model_metrics["recall_at_threshold"],
            "epochs_run": outcome.epochs_run,
            "splits": outcome.splits_description,
            "training_rows": outcome.training_rows,
            "evaluation_rows": outcome.evaluation_rows,
            "artifact_dir": dg.MetadataValue.path(str(artifact_dir)),
            "comparison": dg.MetadataValue.md(metrics_table_markdown(outcome.metrics)),
            "roc_curves": dg.MetadataValue.md(roc_plot_markdown(outcome.evaluation_labels, outcome.scores)),
            "calibration": dg.MetadataValue.md(calibration_plot_markdown(outcome.evaluation_labels, probabilities)),
            "lift_chart": dg.MetadataValue.md(lift_plot_markdown(outcome.evaluation_labels, outcome.scores)),
            "training_seconds": round(time.monotonic() - started, 1),
        },
    )
