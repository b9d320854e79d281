"""Pick where the champion scores: the local SavedModel, a Vertex AI endpoint, or a Vertex AI batch job."""

import os
from dataclasses import dataclass

import dagster as dg

from churn_assets.defs.deployment.registry import RegisteredModel
from churn_assets.scoring.saved_model import SavedModelScorer, local_path_from_uri


@dataclass
class ScoringMethod:
    """A scoring method: `predictor` scores chunks in this process (locally or through an endpoint), `batch` runs a Vertex AI job."""

    name: str
    predictor: object | None = None
    batch: object | None = None


def local_method(champion: RegisteredModel) -> ScoringMethod:
    try:
        path = local_path_from_uri(champion.artifact_uri, champion.model_version)
        return ScoringMethod("local", predictor=SavedModelScorer(path))
    except (ValueError, FileNotFoundError) as error:
        raise dg.Failure(f"Champion {champion.model_version} cannot be loaded: {error}", allow_retries=False) from error


def vertex_method(champion: RegisteredModel, user_count: int, scoring_run_id: str, log, credentials=None) -> ScoringMethod:
    """Choose online, batch or local scoring of a champion deployed to Vertex AI, from the CHURN_VERTEX_* settings."""
    from churn_assets.defs.deployment.vertex import VertexSettings
    from churn_assets.defs.scoring import vertex_scoring

    try:
        settings = VertexSettings.from_environment(os.environ)
    except ValueError as error:
        raise dg.Failure(f"Champion {champion.model_version} is deployed to Vertex AI, but {error}", allow_retries=False) from error
    if settings.scoring_mode == "local":
        return local_method(champion)

    model = vertex_scoring.registered_champion(settings, champion.model_version, credentials, log)
    endpoint = vertex_scoring.endpoint_serving_only(settings, model, credentials, log) if settings.scoring_mode != "batch" else None
    mode = vertex_scoring.choose_mode(settings, user_count, endpoint)
    if mode == "online":
        return ScoringMethod("vertex online", predictor=vertex_scoring.OnlinePredictor(settings, endpoint, log))
    return ScoringMethod(
        "vertex batch",
        batch=vertex_scoring.BatchScoring(settings, model.versioned_resource_name, scoring_run_id, credentials, log),
    )


def choose_method(champion: RegisteredModel, user_count: int, scoring_run_id: str, log, credentials=None) -> ScoringMethod:
    if champion.deployment_target == "vertex":
        return vertex_method(champion, user_count, scoring_run_id, log, credentials)
    return local_method(champion)
