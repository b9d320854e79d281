"""dbt models as Dagster assets, split so that the redemption mart runs after the offers asset."""

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from churn_assets.defs.dbt.project import dbt_project
from churn_assets.defs.dbt.translator import ChurnDbtTranslator
from churn_assets.defs.resources import WarehouseResource

REDEMPTION_SELECTOR = "offer_redemption campaign_lift"


def dbt_build_args(feature_date: str | None = None) -> list[str]:
    """Return the dbt CLI arguments for `build`, with the feature date as a var when given."""
    args = ["build"]
    if feature_date:
        args += ["--vars", json.dumps({"feature_date": feature_date})]
    return args


class DbtBuildConfig(dg.Config):
    """Options of a feature build; an empty feature date means the day after the latest event."""

    feature_date: str = ""


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=ChurnDbtTranslator(),
    exclude=REDEMPTION_SELECTOR,
    name="feature_models",
)
def feature_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig):
    """Build the staging, intermediate, feature and training-set models with their tests."""
    warehouse.export_to_environment()
    yield from dbt.cli(dbt_build_args(config.feature_date or None), context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=ChurnDbtTranslator(),
    select=REDEMPTION_SELECTOR,
    name="redemption_models",
)
def redemption_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Build the redemption and campaign lift marts, which read the offers the pipeline wrote."""
    warehouse.export_to_environment()
    yield from dbt.cli(["build"], context=context).stream()
