"""Deploy the trained model, and promote it to champion only if it beats the current one."""

import os

import dagster as dg

from churn_assets.defs.deployment import registry
from churn_assets.defs.deployment.deployers import Deployer, DeploymentError, LocalDeployer
from churn_assets.defs.deployment.gate import decide_promotion, evaluation_rows, roc_auc_on_rows
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.retries import retried_on_passing_failures
from churn_assets.defs.training.artifacts import TrainedModel
from churn_assets.scoring.saved_model import local_path_from_uri
from churn_assets.training.features import read_training_set
from churn_assets.warehouse.schema import ensure_pipeline_tables


class DeployerResource(dg.ConfigurableResource):
    """Chooses the deployment target: `local` (no cloud account) or `vertex`, which reads its project,
    region and bucket from the CHURN_VERTEX_* environment variables. Empty means CHURN_DEPLOY_TARGET,
    else local."""

    target: str = ""

    def deployer(self) -> Deployer:
        target = self.target or os.environ.get("CHURN_DEPLOY_TARGET", "") or "local"
        if target == "local":
            return LocalDeployer()
        if target == "vertex":
            from churn_assets.defs.deployment.vertex import VertexDeployer, VertexSettings

            return VertexDeployer(VertexSettings.from_environment(os.environ))
        raise ValueError(f"Unknown deployment target {target!r}; use local or vertex.")


class DeploymentConfig(dg.Config):
    """A challenger must beat the champion's ROC AUC on the same evaluation rows by more than this."""

    promotion_margin: float = 0.0


def champion_roc_auc_on_same_rows(champion: registry.RegisteredModel, rows, log) -> float | None:
    """Score the champion on the challenger's evaluation rows; None when it cannot be scored here."""
    try:
        return roc_auc_on_rows(local_path_from_uri(champion.artifact_uri, champion.model_version), rows, champion.feature_columns)
    except (ValueError, FileNotFoundError, KeyError) as error:
        log(f"Champion {champion.model_version} cannot be scored on this machine ({error}); comparing stored ROC AUC instead")
        return champion.roc_auc


@dg.asset(group_name="model", kinds={"tensorflow"}, description="The deployed model version and the champion gate's decision.")
@retried_on_passing_failures
def deployed_model(
    context: dg.AssetExecutionContext,
    config: DeploymentConfig,
    churn_model: TrainedModel,
    deployer: DeployerResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    target = deployer.deployer()
    try:
        artifact_uri = target.deploy(churn_model, context.log.info)
    except DeploymentError as error:
        raise dg.Failure(f"Deploying {churn_model.version} to {target.target} failed, the champion keeps serving: {error}") from error

    with warehouse.open() as client:
        ensure_pipeline_tables(client)
        champion = registry.current_champion(client)
        rows = evaluation_rows(read_training_set(client, tuple(churn_model.feature_columns)))
        registry.register(client, churn_model, artifact_uri, target.target, registry.CHALLENGER)

        challenger_auc = roc_auc_on_rows(churn_model.artifact_dir, rows, churn_model.feature_columns)
        champion_auc = champion_roc_auc_on_same_rows(champion, rows, context.log.warning) if champion else None
        decision = decide_promotion(challenger_auc, champion_auc, config.promotion_margin)
        if decision.promote:
            registry.change_status(client, churn_model.version, registry.CHAMPION)
            if champion is not None:
                registry.change_status(client, champion.model_version, registry.RETIRED)
        serving = churn_model.version if decision.promote else champion.model_version

    context.log.info(
        f"{churn_model.version} {'is the new champion' if decision.promote else 'stays a challenger'}: {decision.reason}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": churn_model.version,
            "promoted": decision.promote,
            "gate_reason": decision.reason,
            "serving_model_version": serving,
            "previous_champion": champion.model_version if champion else "none",
            "challenger_roc_auc": decision.challenger_roc_auc,
            "champion_roc_auc_same_rows": decision.champion_roc_auc if decision.champion_roc_auc is not None else float("nan"),
            "deployment_target": target.target,
            "artifact_uri": artifact_uri,
            "evaluation_rows": rows.num_rows,
        }
    )


@dg.asset_check(asset=deployed_model, blocking=True, description="The champion must beat the recency rule's ROC AUC.")
def champion_beats_recency_baseline(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.open() as client:
        rows = client.query(
            "SELECT model_version, roc_auc, baseline_roc_auc FROM analytics.model_registry FINAL "
            "WHERE status = 'champion' ORDER BY status_changed_at DESC LIMIT 1"
        ).result_rows
    if not rows:
        return dg.AssetCheckResult(passed=False, description="There is no champion model.")
    version, model_auc, baseline_auc = rows[0]
    return dg.AssetCheckResult(
        passed=bool(model_auc > baseline_auc),
        metadata={"champion": version, "champion_roc_auc": model_auc, "recency_baseline_roc_auc": baseline_auc},
    )
