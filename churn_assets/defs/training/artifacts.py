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

    @property
    def saved_model_dir(self) -> Path:
        return Path(self.artifact_dir) / SAVED_MODEL_FOLDER

    def write_description(self) -> None:
        (Path(self.artifact_dir) / DESCRIPTION_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read_description(cls, artifact_dir: Path) -> "TrainedModel":
        data = json.loads((Path(artifact_dir) / DESCRIPTION_FILE).read_text())
        return cls(**data)
