"""A sensor that starts a refresh run when new events land in the raw tables."""

import json

import dagster as dg
from clickhouse_connect.driver.exceptions import ClickHouseError, ProgrammingError

import chdb_lock
from churn_assets.defs.automation.jobs import churn_refresh_job
from churn_assets.defs.resources import WarehouseResource

# Waiting longer would hold the daemon's tick; a busy warehouse just means trying again next tick.
SENSOR_LOCK_TIMEOUT_SECONDS = 2.0

# Offers written back by this pipeline are events too, but they must not trigger a refresh.
FRESHNESS_SQL = """
    SELECT
        (SELECT toString(max(loaded_at)) FROM raw.purchases) AS purchases_loaded_at,
        (SELECT count() FROM raw.purchases) AS purchases_rows,
        (SELECT toString(max(loaded_at)) FROM raw.user_actions WHERE action != 'offer_sent') AS actions_loaded_at,
        (SELECT countIf(action != 'offer_sent') FROM raw.user_actions) AS actions_rows
"""


def read_event_watermark(client) -> dict[str, str | int]:
    """Return the latest load time and row count of each raw event table."""
    row = client.query(FRESHNESS_SQL).result_rows[0]
    return {"purchases_loaded_at": row[0], "purchases_rows": int(row[1]), "actions_loaded_at": row[2], "actions_rows": int(row[3])}


def decide_refresh(previous_cursor: str | None, watermark: dict) -> tuple[bool, str]:
    """Return whether the watermark moved since the cursor, and the new cursor."""
    cursor = json.dumps(watermark, sort_keys=True)
    if watermark["purchases_rows"] == 0 and watermark["actions_rows"] == 0:
        return False, previous_cursor or cursor
    return cursor != previous_cursor, cursor


@dg.sensor(
    job=churn_refresh_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts churn_refresh when raw.purchases or raw.user_actions receive new rows.",
)
def fresh_events_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    try:
        with warehouse.open_for_sensor(SENSOR_LOCK_TIMEOUT_SECONDS) as client:
            watermark = read_event_watermark(client)
    except chdb_lock.WarehouseBusyError as error:
        return dg.SkipReason(f"Warehouse busy, trying again next tick: {error}")
    except ProgrammingError as error:
        # A process outside this project holding the folder surfaces as chdb's EmbeddedServer error.
        if "EmbeddedServer" in str(error):
            return dg.SkipReason(f"Warehouse opened by another program, trying again next tick: {error}")
        raise
    except ClickHouseError as error:
        if "UNKNOWN_TABLE" in str(error) or "UNKNOWN_DATABASE" in str(error):
            return dg.SkipReason("No raw event tables yet; load events with `churn ingest` or `churn simulate`.")
        raise

    should_run, cursor = decide_refresh(context.cursor, watermark)
    if not should_run:
        return dg.SkipReason(f"No new events since {context.cursor or 'the start'}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=cursor, tags={"churn/trigger": "fresh_events"})],
        cursor=cursor,
        asset_events=observations(watermark),
    )


def observations(watermark: dict) -> list[dg.AssetObservation]:
    """Record the raw tables' row counts and latest load times, so the UI shows them on the raw assets."""
    return [
        dg.AssetObservation(
            asset_key=["raw", table],
            metadata={"dagster/row_count": watermark[f"{prefix}_rows"], "latest_loaded_at": watermark[f"{prefix}_loaded_at"]},
        )
        for table, prefix in (("purchases", "purchases"), ("user_actions", "actions"))
    ]
