"""Root Dagster definitions: loads each stage's assets and the resources they share."""

import dagster as dg

from churn_assets.defs.automation.checks import offer_policy_compliance, redemption_rate_floor, score_drift
from churn_assets.defs.automation.conditions import automation_sensor, hourly
from churn_assets.defs.automation.freshness import build_source_freshness_checks
from churn_assets.defs.automation.jobs import churn_refresh_job, churn_retrain_job
from churn_assets.defs.automation.schedules import daily_scoring_schedule, weekly_retrain_schedule
from churn_assets.defs.automation.sensors import fresh_events_sensor
from churn_assets.defs.dbt.assets import feature_models, redemption_models
from churn_assets.defs.dbt.project import dbt_project, dbt_resource
from churn_assets.defs.deployment.assets import DeployerResource, champion_beats_recency_baseline, deployed_model
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

raw_source_freshness = build_source_freshness_checks(dbt_project.manifest_path, automation_condition=hourly())

defs = dg.Definitions(
    assets=[*raw_event_tables, feature_models, churn_model, deployed_model, churn_scores, discount_offers, redemption_models],
    asset_checks=[champion_beats_recency_baseline, score_drift, offer_policy_compliance, redemption_rate_floor, raw_source_freshness],
    jobs=[churn_pipeline_job, churn_refresh_job, churn_retrain_job],
    schedules=[weekly_retrain_schedule, daily_scoring_schedule],
    sensors=[fresh_events_sensor, automation_sensor],
    resources={
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource(),
        "deployer": DeployerResource(),
    },
    # One process per run: chdb allows one process per database path, and TensorFlow loads once.
    executor=dg.in_process_executor,
)
