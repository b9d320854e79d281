"""Train the Keras model on the training snapshots and score it and the baselines on the held-out cutoff."""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from churn_assets.training.baselines import bg_nbd_scores, logistic_regression_scores, recency_scores
from churn_assets.training.evaluation import score_metrics
from churn_assets.training.features import FEATURE_COLUMNS, LABEL_COLUMN, arrow_to_feature_arrays
from churn_assets.training.model import Hyperparameters, build_model, fit_model, predict_probabilities, set_seeds
from churn_assets.training.splits import split_by_snapshot

MODEL_NAME = "keras"


@dataclass
class TrainingOutcome:
    """The fitted model and how it and each baseline scored the held-out evaluation rows."""

    model: object
    splits_description: str
    training_rows: int
    validation_rows: int
    evaluation_rows: int
    evaluation_cutoff: str
    training_cutoffs: list[str]
    epochs_run: int
    evaluation_labels: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _select(inputs: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in inputs.items()}


def _column(table: pa.Table, name: str, mask: np.ndarray) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)[mask]


def train_and_evaluate(table: pa.Table, settings: Hyperparameters, log=print, columns=FEATURE_COLUMNS) -> TrainingOutcome:
    """Fit the model with early stopping on the later-in-time validation rows, then evaluate every scorer."""
    splits = split_by_snapshot(table)
    inputs = arrow_to_feature_arrays(table, columns)
    labels = table.column(LABEL_COLUMN).to_numpy(zero_copy_only=False).astype(np.float32)
    log(
        f"{splits.description}: {int(splits.train.sum())} training, {int(splits.validation.sum())} validation, "
        f"{int(splits.evaluation.sum())} evaluation rows; churn rate in training {labels[splits.train].mean():.3f}"
    )

    set_seeds()
    model = build_model(columns, _select(inputs, splits.train), settings)
    history = fit_model(
        model,
        _select(inputs, splits.train), labels[splits.train],
        _select(inputs, splits.validation), labels[splits.validation],
        settings, log=log,
    )

    evaluation = splits.evaluation
    evaluation_inputs = _select(inputs, evaluation)
    window_days = int(_column(table, "label_window_days", evaluation)[0])
    scores = {
        MODEL_NAME: predict_probabilities(model, evaluation_inputs),
        "logistic_regression": logistic_regression_scores(
            _select(inputs, splits.train), labels[splits.train], evaluation_inputs, columns
        ),
        "recency_rule": recency_scores(_column(table, "days_since_last_purchase", evaluation)),
        "bg_nbd": bg_nbd_scores(
            _column(table, "count_purchase_days_total", evaluation),
            _column(table, "days_since_first_purchase", evaluation),
            _column(table, "days_since_last_purchase", evaluation),
            window_days,
        ),
    }
    evaluation_labels = labels[evaluation].astype(int)
    probability_scorers = {MODEL_NAME, "logistic_regression", "bg_nbd"}
    metrics = {
        name: score_metrics(evaluation_labels, values, probabilities=name in probability_scorers)
        for name, values in scores.items()
    }
    return TrainingOutcome(
        model=model,
        splits_description=splits.description,
        training_rows=int(splits.train.sum()),
        validation_rows=int(splits.validation.sum()),
        evaluation_rows=int(evaluation.sum()),
        evaluation_cutoff=str(_column(table, "as_of_date", evaluation)[0]),
        training_cutoffs=sorted({str(value) for value in _column(table, "as_of_date", splits.train | splits.validation)}),
        epochs_run=len(history.history["loss"]),
        evaluation_labels=evaluation_labels,
        scores=scores,
        metrics=metrics,
    )
