"""Declarative automation: rescore after a new champion, and check source freshness every hour.

The sensor that evaluates these conditions is off until someone turns it on in the UI.
"""

import dagster as dg


def after_upstream_changes() -> dg.AutomationCondition:
    """Run when an upstream asset was updated by another run, for example a retrain that promoted a new champion.

    An asset updated in the same run as its upstream assets, as the churn_refresh job does, is not run again.
    """
    return dg.AutomationCondition.eager()


def hourly() -> dg.AutomationCondition:
    return dg.AutomationCondition.cron_tick_passed("0 * * * *", "UTC") & ~dg.AutomationCondition.in_progress()


automation_sensor = dg.AutomationConditionSensorDefinition(
    "churn_automation",
    target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Rescores and refreshes offers after a retrain promotes a new champion, and checks source freshness hourly.",
)
