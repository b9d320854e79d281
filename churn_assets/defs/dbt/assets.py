"""dbt models as Dagster assets, split so that the redemption mart runs after the offers asset."""

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from churn_assets.defs.dbt.project import dbt_project
from churn_assets.defs.dbt.row_counts import with_row_counts
from churn_assets.defs.dbt.translator import OFFER_MARTS, ChurnDbtTranslator
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.retries import retried_on_passing_failures

REDEMPTION_SELECTOR = " ".join(OFFER_MARTS)


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
@retried_on_passing_failures
def feature_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig):
    """Build the staging, intermediate, feature and training-set models with their tests."""
    warehouse.export_to_environment()
    invocation = dbt.cli(dbt_build_args(config.feature_date or None), context=context)
    yield from with_row_counts(invocation.stream(), warehouse, invocation.manifest)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=ChurnDbtTranslator(),
    select=REDEMPTION_SELECTOR,
    name="redemption_models",
)
@retried_on_passing_failures
def redemption_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Build the redemption and campaign lift marts, which read the offers the pipeline wrote."""
    warehouse.export_to_environment()
    invocation = dbt.cli(["build"], context=context)
    yield from with_row_counts(invocation.stream(), warehouse, invocation.manifest)
