"""Asset keys and groups for dbt models: the bare model name, grouped by dbt layer."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


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
