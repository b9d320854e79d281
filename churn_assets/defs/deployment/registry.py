"""The model registry table: one row per model version with its status and artifact location."""

from dataclasses import dataclass
from datetime import date, datetime, timezone

from churn_assets.defs.training.artifacts import TrainedModel

CHAMPION = "champion"
CHALLENGER = "challenger"
RETIRED = "retired"

REGISTRY_COLUMNS = [
    "model_version", "status", "artifact_uri", "deployment_target", "feature_columns", "feature_schema_hash",
    "training_rows", "evaluation_rows", "evaluation_cutoff", "training_cutoffs", "roc_auc", "baseline_roc_auc",
    "registered_at", "status_changed_at",
]


@dataclass(frozen=True)
class RegisteredModel:
    """A registry row: the version, where its artifact lives, and the features it expects."""

    model_version: str
    status: str
    artifact_uri: str
    deployment_target: str
    feature_columns: list[str]
    feature_schema_hash: str
    roc_auc: float


def register(client, trained: TrainedModel, artifact_uri: str, target: str, status: str) -> None:
    """Insert a registry row for a newly deployed version."""
    now = datetime.now(timezone.utc)
    client.insert(
        "analytics.model_registry",
        [[
            trained.version, status, artifact_uri, target, trained.feature_columns, trained.feature_schema_hash,
            trained.training_rows, trained.evaluation_rows, date.fromisoformat(trained.evaluation_cutoff),
            [date.fromisoformat(cutoff) for cutoff in trained.training_cutoffs],
            trained.metrics["roc_auc"], trained.baseline_metrics["recency_rule"]["roc_auc"], now, now,
        ]],
        column_names=REGISTRY_COLUMNS,
    )


def change_status(client, model_version: str, status: str) -> None:
    """Record a new status for a version; the newest status_changed_at wins."""
    client.command(
        "INSERT INTO analytics.model_registry "
        "SELECT * REPLACE ({status:String} AS status, now64(3, 'UTC') AS status_changed_at) "
        "FROM analytics.model_registry FINAL WHERE model_version = {version:String}",
        parameters={"status": status, "version": model_version},
    )


def current_champion(client) -> RegisteredModel | None:
    """Return the champion, the model that scoring uses, or None before the first deployment."""
    result = client.query(
        "SELECT model_version, status, artifact_uri, deployment_target, feature_columns, feature_schema_hash, roc_auc "
        "FROM analytics.model_registry FINAL WHERE status = {status:String} "
        "ORDER BY status_changed_at DESC LIMIT 1",
        parameters={"status": CHAMPION},
    )
    if not result.result_rows:
        return None
    return RegisteredModel(*result.result_rows[0])
