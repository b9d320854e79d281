"""Jobs the sensor and schedules start: a refresh without training, and a retrain."""

import dagster as dg

# Rebuild the marts from fresh events, rescore with the current champion, refresh offers and the
# redemption mart. Training is left to the retraining job.
refresh_selection = (
    dg.AssetSelection.groups("dbt_staging", "dbt_intermediate", "dbt_marts", "scoring", "offers")
)

churn_refresh_job = dg.define_asset_job(
    "churn_refresh",
    selection=refresh_selection,
    description="Rebuild the dbt marts, rescore every user with the champion and refresh offers.",
)

churn_retrain_job = dg.define_asset_job(
    "churn_retrain",
    selection=dg.AssetSelection.assets("churn_model", "deployed_model"),
    description="Retrain the churn model and let the gate decide whether it replaces the champion.",
)
