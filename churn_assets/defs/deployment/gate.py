"""The promotion gate: a challenger replaces the champion only if it scores better on the same rows."""

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import roc_auc_score

from churn_assets.scoring.saved_model import SavedModelScorer
from churn_assets.training.features import LABEL_COLUMN, arrow_to_feature_arrays


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, both models' ROC AUC on the shared evaluation rows, and why."""

    promote: bool
    challenger_roc_auc: float
    champion_roc_auc: float | None
    reason: str


def decide_promotion(challenger_roc_auc: float, champion_roc_auc: float | None, margin: float) -> GateDecision:
    """Promote when there is no champion, or when the challenger beats it by more than `margin`."""
    if champion_roc_auc is None:
        return GateDecision(True, challenger_roc_auc, None, "no champion yet")
    if challenger_roc_auc > champion_roc_auc + margin:
        return GateDecision(
            True, challenger_roc_auc, champion_roc_auc,
            f"ROC AUC {challenger_roc_auc:.4f} beats the champion's {champion_roc_auc:.4f} by more than {margin}",
        )
    return GateDecision(
        False, challenger_roc_auc, champion_roc_auc,
        f"ROC AUC {challenger_roc_auc:.4f} does not beat the champion's {champion_roc_auc:.4f} by more than {margin}",
    )


def evaluation_rows(table: pa.Table) -> pa.Table:
    """Return the held-out evaluation split of the training set."""
    return table.filter(pc.equal(table.column("split"), "evaluation"))


def roc_auc_on_rows(artifact_dir: Path, rows: pa.Table, feature_columns: list[str]) -> float:
    """Score the rows with a SavedModel and return its ROC AUC against their labels."""
    scorer = SavedModelScorer(artifact_dir)
    probabilities = scorer.predict(arrow_to_feature_arrays(rows, feature_columns))
    labels = rows.column(LABEL_COLUMN).to_numpy(zero_copy_only=False).astype(int)
    return float(roc_auc_score(labels, probabilities))
