"""Deploy the trained model and make it the champion that scoring uses."""

import dagster as dg

from churn_assets.defs.deployment.deployers import Deployer, LocalDeployer
from churn_assets.defs.deployment import registry
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.training.artifacts import TrainedModel
from churn_assets.warehouse.schema import ensure_pipeline_tables


class DeployerResource(dg.ConfigurableResource):
    """Chooses the deployment target; `local` (the default) needs no cloud account."""

    target: str = "local"

    def deployer(self) -> Deployer:
        if self.target == "local":
            return LocalDeployer()
        raise ValueError(f"Unknown deployment target {self.target!r}; use local.")


@dg.asset(group_name="model", kinds={"tensorflow"}, description="The champion model version, deployed and registered.")
def deployed_model(
    context: dg.AssetExecutionContext, churn_model: TrainedModel, deployer: DeployerResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    target = deployer.deployer()
    artifact_uri = target.deploy(churn_model, context.log.info)

    with warehouse.open() as client:
        ensure_pipeline_tables(client)
        previous = registry.current_champion(client)
        registry.register(client, churn_model, artifact_uri, target.target, registry.CHAMPION)
        if previous is not None and previous.model_version != churn_model.version:
            registry.change_status(client, previous.model_version, registry.RETIRED)

    context.log.info(
        f"{churn_model.version} is the champion on {target.target}"
        + (f", replacing {previous.model_version}" if previous else "")
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": churn_model.version,
            "deployment_target": target.target,
            "artifact_uri": artifact_uri,
            "previous_champion": previous.model_version if previous else "none",
            "roc_auc": churn_model.metrics["roc_auc"],
        }
    )
