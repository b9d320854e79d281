"""Model folder locations and the description file saved beside each trained model."""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from churn_assets.warehouse.settings import PROJECT_ROOT

MODEL_DIR_VARIABLE = "CHURN_MODEL_DIR"
DESCRIPTION_FILE = "model.json"
SAVED_MODEL_FOLDER = "saved_model"


def model_root() -> Path:
    """Return the folder for trained and deployed models: CHURN_MODEL_DIR or .models in the project."""
    return Path(os.environ.get(MODEL_DIR_VARIABLE) or PROJECT_ROOT / ".models").resolve()


@dataclass
class TrainedModel:
    """A trained model on disk with what it was trained on and how it scored."""

    version: str
    artifact_dir: str
    feature_columns: list[str]
    feature_schema_hash: str
    training_rows: int
    validation_rows: int
    evaluation_rows: int
    evaluation_cutoff: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    training_cutoffs: list[str] = field(default_factory=list)

    @property
    def saved_model_dir(self) -> Path:
        return Path(self.artifact_dir) / SAVED_MODEL_FOLDER

    def write_description(self) -> None:
        (Path(self.artifact_dir) / DESCRIPTION_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read_description(cls, artifact_dir: Path) -> "TrainedModel":
        data = json.loads((Path(artifact_dir) / DESCRIPTION_FILE).read_text())
        return cls(**data)


def trained_model_from_outcome(version: str, artifact_dir: Path, outcome, feature_columns) -> TrainedModel:
    """Describe a model fitted by `train_and_evaluate`, whose artifact was exported to `artifact_dir`."""
    from churn_assets.training.features import feature_schema_hash
    from churn_assets.training.train import MODEL_NAME

    return TrainedModel(
        version=version,
        artifact_dir=str(artifact_dir),
        feature_columns=list(feature_columns),
        feature_schema_hash=feature_schema_hash(list(feature_columns)),
        training_rows=outcome.training_rows,
        validation_rows=outcome.validation_rows,
        evaluation_rows=outcome.evaluation_rows,
        evaluation_cutoff=outcome.evaluation_cutoff,
        metrics=outcome.metrics[MODEL_NAME],
        baseline_metrics={name: metrics for name, metrics in outcome.metrics.items() if name != MODEL_NAME},
        training_cutoffs=list(outcome.training_cutoffs),
    )
