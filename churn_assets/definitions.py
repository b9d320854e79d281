"""Root Dagster definitions: loads each stage's assets and the resources they share."""

import dagster as dg

from churn_assets.defs.dbt.assets import feature_models, redemption_models
from churn_assets.defs.dbt.project import dbt_resource
from churn_assets.defs.deployment.assets import DeployerResource, deployed_model
from churn_assets.defs.offers.assets import discount_offers
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.scoring.assets import churn_scores
from churn_assets.defs.training.assets import churn_model

raw_event_tables = [
    dg.AssetSpec(["raw", "purchases"], group_name="raw", kinds={"clickhouse"}, description="Purchases loaded by `churn ingest`."),
    dg.AssetSpec(["raw", "user_actions"], group_name="raw", kinds={"clickhouse"}, description="User actions loaded by `churn ingest`."),
]

churn_pipeline_job = dg.define_asset_job(
    "churn_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("raw"),
    description="Build the marts, train, deploy, score and write offers, then refresh the redemption mart.",
)

defs = dg.Definitions(
    assets=[*raw_event_tables, feature_models, churn_model, deployed_model, churn_scores, discount_offers, redemption_models],
    jobs=[churn_pipeline_job],
    resources={
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource(),
        "deployer": DeployerResource(),
    },
    # One process per run: chdb allows one process per database path, and TensorFlow loads once.
    executor=dg.in_process_executor,
)
