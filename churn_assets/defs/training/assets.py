"""Train the Keras churn model and evaluate it against a recency rule and logistic regression."""

import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import numpy as np

from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.training.artifacts import TrainedModel, model_root
from churn_assets.defs.training.splits import split_by_snapshot
from churn_assets.training.evaluation import roc_plot_markdown, score_metrics
from churn_assets.training.features import (
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    arrow_to_feature_arrays,
    feature_schema_hash,
    read_training_set,
)
from churn_assets.training.model import Hyperparameters, build_model, fit_model, predict_probabilities, set_seeds


class TrainingConfig(dg.Config):
    """Hyperparameters of the churn model."""

    hidden_units: list[int] = [32, 16]
    dropout: float = 0.1
    learning_rate: float = 0.003
    epochs: int = 30
    batch_size: int = 512
    early_stopping_patience: int = 4

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(
            hidden_units=tuple(self.hidden_units),
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            batch_size=self.batch_size,
            early_stopping_patience=self.early_stopping_patience,
        )


def _select(inputs: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in inputs.items()}


def _logistic_regression_scores(train_inputs, train_labels, evaluation_inputs) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def matrix(inputs):
        values = np.concatenate([inputs[name] for name in FEATURE_COLUMNS], axis=1)
        return np.sign(values) * np.log1p(np.abs(values))

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    classifier.fit(matrix(train_inputs), train_labels)
    return classifier.predict_proba(matrix(evaluation_inputs))[:, 1]


@dg.asset(
    deps=["churn_training_set"],
    group_name="model",
    kinds={"tensorflow", "keras"},
    description="Keras churn model trained on earlier snapshots and evaluated on the held-out latest cutoff.",
)
def churn_model(context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource) -> dg.Output[TrainedModel]:
    started = time.monotonic()
    with warehouse.open() as client:
        table = read_training_set(client)
    context.log.info(f"Read {table.num_rows} training-set rows in {time.monotonic() - started:.1f} s")

    splits = split_by_snapshot(table)
    inputs = arrow_to_feature_arrays(table, FEATURE_COLUMNS)
    labels = table.column(LABEL_COLUMN).to_numpy(zero_copy_only=False).astype(np.float32)
    context.log.info(
        f"{splits.description}: {int(splits.train.sum())} training, {int(splits.validation.sum())} validation, "
        f"{int(splits.evaluation.sum())} evaluation rows; churn rate in training {labels[splits.train].mean():.3f}"
    )

    import tensorflow as tf

    context.log.info(f"TensorFlow {tf.__version__}")
    set_seeds()
    settings = config.hyperparameters()
    model = build_model(FEATURE_COLUMNS, _select(inputs, splits.train), settings)
    history = fit_model(
        model,
        _select(inputs, splits.train), labels[splits.train],
        _select(inputs, splits.validation), labels[splits.validation],
        settings, log=context.log.info,
    )

    evaluation_labels = labels[splits.evaluation].astype(int)
    model_scores = predict_probabilities(model, _select(inputs, splits.evaluation))
    recency_scores = table.column("recency_days").to_numpy(zero_copy_only=False)[splits.evaluation]
    logistic_scores = _logistic_regression_scores(
        _select(inputs, splits.train), labels[splits.train], _select(inputs, splits.evaluation)
    )
    metrics = score_metrics(evaluation_labels, model_scores, probabilities=True)
    baselines = {
        "recency_rule": score_metrics(evaluation_labels, recency_scores, probabilities=False),
        "logistic_regression": score_metrics(evaluation_labels, logistic_scores, probabilities=True),
    }
    context.log.info(
        f"Held-out ROC AUC: Keras {metrics['roc_auc']:.4f}, recency rule {baselines['recency_rule']['roc_auc']:.4f}, "
        f"logistic regression {baselines['logistic_regression']['roc_auc']:.4f}"
    )

    trained_at = datetime.now(timezone.utc)
    version = f"churn-{trained_at:%Y%m%d-%H%M%S}-{context.run_id[:8]}"
    artifact_dir = model_root() / "candidates" / version
    artifact_dir.mkdir(parents=True, exist_ok=True)
    model.export(str(artifact_dir / "saved_model"), format="tf_saved_model", verbose=False)

    evaluation_cutoff = str(table.column("as_of_date").to_numpy(zero_copy_only=False)[splits.evaluation][0])
    trained = TrainedModel(
        version=version,
        artifact_dir=str(artifact_dir),
        feature_columns=list(FEATURE_COLUMNS),
        feature_schema_hash=feature_schema_hash(FEATURE_COLUMNS),
        training_rows=int(splits.train.sum()),
        validation_rows=int(splits.validation.sum()),
        evaluation_rows=int(splits.evaluation.sum()),
        evaluation_cutoff=evaluation_cutoff,
        metrics=metrics,
        baseline_metrics=baselines,
    )
    trained.write_description()

    comparison = "| scorer | ROC AUC | PR AUC | top-decile lift |\n| --- | --- | --- | --- |\n" + "\n".join(
        f"| {name} | {values['roc_auc']:.4f} | {values['pr_auc']:.4f} | {values['top_decile_lift']:.2f} |"
        for name, values in {"keras": metrics, **baselines}.items()
    )
    roc_plot = roc_plot_markdown(
        evaluation_labels,
        {"Keras": model_scores, "Recency rule": recency_scores, "Logistic regression": logistic_scores},
    )
    return dg.Output(
        trained,
        metadata={
            "model_version": version,
            "evaluation_cutoff": evaluation_cutoff,
            "roc_auc": metrics["roc_auc"],
            "recency_baseline_roc_auc": baselines["recency_rule"]["roc_auc"],
            "logistic_regression_roc_auc": baselines["logistic_regression"]["roc_auc"],
            "pr_auc": metrics["pr_auc"],
            "brier_score": metrics["brier_score"],
            "top_decile_lift": metrics["top_decile_lift"],
            "epochs_run": len(history.history["loss"]),
            "training_rows": trained.training_rows,
            "evaluation_rows": trained.evaluation_rows,
            "artifact_dir": dg.MetadataValue.path(str(artifact_dir)),
            "comparison": dg.MetadataValue.md(comparison),
            "roc_curves": dg.MetadataValue.md(roc_plot),
            "training_seconds": round(time.monotonic() - started, 1),
        },
    )
