"""Asset keys and groups for dbt models: the bare model name, grouped by dbt layer."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from churn_assets.defs.automation.conditions import after_upstream_changes

# Marts that read the offers the pipeline writes; they follow the discount_offers asset.
OFFER_MARTS = ("offer_redemption", "campaign_lift")


class ChurnDbtTranslator(DagsterDbtTranslator):
    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        asset_key_meta = dbt_resource_props.get("meta", {}).get("dagster", {}).get("asset_key")
        if asset_key_meta:
            return dg.AssetKey(asset_key_meta)
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        path_parts = dbt_resource_props.get("fqn", [])
        layer = path_parts[1] if len(path_parts) > 2 else "marts"
        return f"dbt_{layer}"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] == "model" and dbt_resource_props["name"] in OFFER_MARTS:
            return after_upstream_changes()
        return None
