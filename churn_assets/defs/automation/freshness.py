"""dbt source freshness as Dagster asset checks on the raw event tables.

The thresholds, the time column and the row filter come from the `freshness` config of each source
in dbt_project/models/staging/_sources.yml, so `dbt source freshness` and Dagster agree.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from churn_assets.defs.resources import WarehouseResource

PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
CHECK_NAME = "source_freshness"


@dataclass(frozen=True)
class FreshnessRule:
    """One dbt source's freshness config."""

    asset_key: dg.AssetKey
    database: str
    table: str
    loaded_at_field: str
    warn_after_seconds: int | None
    error_after_seconds: int | None
    row_filter: str | None

    def describe(self) -> str:
        def hours(seconds):
            return "never" if seconds is None else f"{seconds / 3600:g} h"

        return f"dbt source freshness of {self.loaded_at_field}: warn after {hours(self.warn_after_seconds)}, error after {hours(self.error_after_seconds)}."


def threshold_seconds(threshold: dict | None) -> int | None:
    if not threshold or not threshold.get("count") or not threshold.get("period"):
        return None
    return int(threshold["count"]) * PERIOD_SECONDS[threshold["period"]]


def freshness_rules(manifest_path: Path) -> list[FreshnessRule]:
    """Read every source that has a loaded_at_field and a warn or error threshold from dbt's manifest."""
    manifest = json.loads(Path(manifest_path).read_text())
    rules = []
    for source in manifest["sources"].values():
        freshness = source.get("freshness") or {}
        warn_after = threshold_seconds(freshness.get("warn_after"))
        error_after = threshold_seconds(freshness.get("error_after"))
        if not source.get("loaded_at_field") or (warn_after is None and error_after is None):
            continue
        rules.append(FreshnessRule(
            asset_key=dg.AssetKey([source["source_name"], source["name"]]),
            database=source["schema"],
            table=source["identifier"],
            loaded_at_field=source["loaded_at_field"],
            warn_after_seconds=warn_after,
            error_after_seconds=error_after,
            row_filter=freshness.get("filter"),
        ))
    return sorted(rules, key=lambda rule: rule.asset_key.to_user_string())


def latest_load(client, rule: FreshnessRule) -> tuple[object, int | None]:
    """Return the newest loaded_at value and its age in seconds (None for an empty table)."""
    # The filter is SQL from the dbt project's own config, as `dbt source freshness` runs it.
    where = f"WHERE {rule.row_filter}" if rule.row_filter else ""
    latest, age_seconds, rows = client.query(
        "SELECT max({column:Identifier}), dateDiff('second', max({column:Identifier}), now64(3, 'UTC')), count() "
        f"FROM {{database:Identifier}}.{{table:Identifier}} {where}",
        parameters={"column": rule.loaded_at_field, "database": rule.database, "table": rule.table},
    ).result_rows[0]
    return (latest, int(age_seconds)) if rows else (None, None)


def evaluate(rule: FreshnessRule, latest, age_seconds: int | None) -> dg.AssetCheckResult:
    """Pass when fresh, warn past warn_after, fail past error_after, as dbt does."""
    if age_seconds is None:
        return dg.AssetCheckResult(
            asset_key=rule.asset_key, check_name=CHECK_NAME, passed=False, severity=dg.AssetCheckSeverity.ERROR,
            description=f"{rule.database}.{rule.table} has no rows.",
        )
    error_after, warn_after = rule.error_after_seconds, rule.warn_after_seconds
    if error_after is not None and age_seconds > error_after:
        passed, severity = False, dg.AssetCheckSeverity.ERROR
    elif warn_after is not None and age_seconds > warn_after:
        passed, severity = False, dg.AssetCheckSeverity.WARN
    else:
        passed, severity = True, dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        asset_key=rule.asset_key,
        check_name=CHECK_NAME,
        passed=passed,
        severity=severity,
        description=f"Newest {rule.loaded_at_field} is {age_seconds / 3600:.1f} h old. {rule.describe()}",
        metadata={
            "latest_loaded_at": str(latest),
            "age_hours": round(age_seconds / 3600, 2),
            "warn_after_hours": rule.warn_after_seconds / 3600 if warn_after is not None else "never",
            "error_after_hours": rule.error_after_seconds / 3600 if error_after is not None else "never",
        },
    )


def build_source_freshness_checks(manifest_path: Path, automation_condition: dg.AutomationCondition | None = None):
    """Return one multi-asset check with a source_freshness check per dbt source that has a freshness config."""
    rules = freshness_rules(manifest_path)

    @dg.multi_asset_check(
        name="raw_source_freshness",
        specs=[
            dg.AssetCheckSpec(CHECK_NAME, asset=rule.asset_key, description=rule.describe(), automation_condition=automation_condition)
            for rule in rules
        ],
        can_subset=True,
    )
    def raw_source_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        selected = context.selected_asset_check_keys
        with warehouse.open() as client:
            for rule in rules:
                if dg.AssetCheckKey(rule.asset_key, CHECK_NAME) in selected:
                    yield evaluate(rule, *latest_load(client, rule))

    return raw_source_freshness
