"""Load an exported SavedModel and score raw feature values by name."""

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from churn_assets.defs.training.artifacts import SAVED_MODEL_FOLDER


def local_path_from_uri(artifact_uri: str, model_version: str | None = None) -> Path:
    """Turn a file:// URI (or a plain path) into a local path.

    For a cloud URI (such as a Vertex deployment's gs:// folder) it returns the candidate folder this
    machine trained the same version into, when that folder still exists.
    """
    parts = urlsplit(artifact_uri)
    if parts.scheme in ("", "file"):
        return Path(parts.path if parts.scheme else artifact_uri)
    if model_version:
        from churn_assets.defs.training.artifacts import model_root

        local_copy = model_root() / "candidates" / model_version
        if (local_copy / SAVED_MODEL_FOLDER).is_dir():
            return local_copy
    raise ValueError(
        f"Artifact {artifact_uri} of model {model_version or '(unknown)'} is not on this machine and no local "
        "candidate copy exists; download it into the model folder before scoring."
    )


class SavedModelScorer:
    """Call the SavedModel's serving function on named float32 columns."""

    def __init__(self, artifact_dir: Path):
        import tensorflow as tf

        saved_model_dir = Path(artifact_dir) / SAVED_MODEL_FOLDER
        if not saved_model_dir.is_dir():
            raise FileNotFoundError(f"No SavedModel at {saved_model_dir}")
        self._tf = tf
        self._loaded = tf.saved_model.load(str(saved_model_dir))
        self._serve = self._loaded.signatures["serving_default"]
        self.input_names = sorted(self._serve.structured_input_signature[1].keys())

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {name: self._tf.constant(np.asarray(features[name], dtype=np.float32).reshape(-1, 1)) for name in self.input_names}
        outputs = self._serve(**tensors)
        return np.asarray(next(iter(outputs.values()))).reshape(-1).astype(np.float64)
