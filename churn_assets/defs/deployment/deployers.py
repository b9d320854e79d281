"""Deployment targets behind one interface: the local model registry (default) and Vertex AI."""

import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from churn_assets.defs.training.artifacts import TrainedModel, model_root


class DeploymentError(RuntimeError):
    """Raised when a model could not be deployed; the current champion keeps serving."""


class Deployer(ABC):
    """Publishes a trained model's artifact and returns the URI that scoring loads it from."""

    target: str

    @abstractmethod
    def deploy(self, trained: TrainedModel, log) -> str:
        ...


class LocalDeployer(Deployer):
    """Copies the SavedModel into a versioned folder of the local registry."""

    target = "local"

    def __init__(self, registry_dir: Path | None = None):
        self.registry_dir = Path(registry_dir or model_root() / "registry")

    def deploy(self, trained: TrainedModel, log) -> str:
        destination = self.registry_dir / trained.version
        if destination.exists():
            log(f"{trained.version} is already in the local registry at {destination}")
            return destination.as_uri()
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        # Copy beside the destination first, so a crash never leaves a half-copied version folder.
        partial = self.registry_dir / f".{trained.version}.{uuid.uuid4().hex}.partial"
        try:
            shutil.copytree(trained.artifact_dir, partial)
            partial.rename(destination)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise DeploymentError(f"Copying {trained.artifact_dir} to {destination} failed: {error}") from error
        log(f"Copied {trained.version} to {destination}")
        return destination.as_uri()
