"""The fresh-events sensor: cursor, offer_sent actions ignored, and a busy warehouse skipped."""

import subprocess
import sys
import textwrap

import dagster as dg

from churn_assets.defs.automation.sensors import decide_refresh, fresh_events_sensor
from churn_assets.defs.resources import WarehouseResource
from churn_assets.ingest.loader import ingest_file
from churn_assets.warehouse import open_client


def evaluate(cursor=None):
    """Return the tick's run request or skip reason, and the cursor after it."""
    context = dg.build_sensor_context(cursor=cursor, resources={"warehouse": WarehouseResource()})
    result = fresh_events_sensor(context)
    if isinstance(result, dg.SensorResult):
        assert [event.asset_key.to_user_string() for event in result.asset_events] == ["raw/purchases", "raw/user_actions"]
        assert len(result.run_requests) == 1
        return result.run_requests[0], result.cursor
    return result, context.cursor


def write_purchases(path, rows):
    path.write_text("user_id,purchase_date,purchase_value\n" + "".join(f"{row}\n" for row in rows))
    return path


def test_cursor_decision_ignores_empty_tables():
    empty = {"purchases_loaded_at": "", "purchases_rows": 0, "actions_loaded_at": "", "actions_rows": 0}
    assert decide_refresh(None, empty)[0] is False


def test_sensor_runs_once_per_new_data(warehouse_url, tmp_path):
    result, cursor = evaluate()
    assert isinstance(result, dg.SkipReason)

    with open_client() as client:
        ingest_file(client, "purchases", write_purchases(tmp_path / "a.csv", ["1,2024-01-01,5"]), progress=lambda m: None)
    first, cursor = evaluate()
    assert isinstance(first, dg.RunRequest)

    again, cursor_after = evaluate(cursor)
    assert isinstance(again, dg.SkipReason)
    assert cursor_after == cursor

    with open_client() as client:
        ingest_file(client, "purchases", write_purchases(tmp_path / "b.csv", ["2,2024-01-02,7"]), progress=lambda m: None)
    second, _ = evaluate(cursor)
    assert isinstance(second, dg.RunRequest)
    assert second.run_key != first.run_key


def test_sensor_ignores_offer_sent_actions(warehouse_url, tmp_path):
    with open_client() as client:
        ingest_file(client, "purchases", write_purchases(tmp_path / "a.csv", ["1,2024-01-01,5"]), progress=lambda m: None)
    _, cursor = evaluate()
    offers = tmp_path / "offers.csv"
    offers.write_text("user_id,action,event_time,discount_code\n1,offer_sent,2024-01-03,SAVE20-X\n")
    with open_client() as client:
        ingest_file(client, "actions", offers, progress=lambda m: None)
    result, _ = evaluate(cursor)
    assert isinstance(result, dg.SkipReason)


def test_sensor_skips_when_warehouse_busy(warehouse_url):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import time
            from churn_assets.warehouse import open_client
            with open_client() as client:
                client.command("SELECT 1")
                print("holding", flush=True)
                time.sleep(60)
            """
        )],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result, _ = evaluate()
        assert isinstance(result, dg.SkipReason)
        assert "busy" in result.skip_message
        assert f"process {holder.pid}" in result.skip_message
    finally:
        holder.kill()
        holder.wait()
