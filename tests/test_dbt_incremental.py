"""The incremental daily-activity model gives the same rows as a full refresh on the same data."""

import subprocess
from datetime import date

import pytest

from churn_assets.ingest.loader import ingest_file
from churn_assets.simulate import append_days, simulate_shop
from churn_assets.warehouse import open_client
from conftest import REPO_ROOT, subprocess_environment

pytestmark = pytest.mark.slow

MODEL = "int_user_daily_activity"
SNAPSHOT_SQL = f"SELECT * FROM intermediate.{MODEL} ORDER BY user_id, activity_date"


def dbt_run(warehouse_url, *extra):
    completed = subprocess.run(
        ["dbt", "run", "--select", f"+{MODEL}", *extra],
        cwd=REPO_ROOT / "dbt_project", env=subprocess_environment(CHURN_WAREHOUSE_URL=warehouse_url),
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]


def snapshot() -> list[tuple]:
    with open_client() as client:
        return client.query(SNAPSHOT_SQL).result_rows


def test_incremental_equals_full_refresh(warehouse_url, tmp_path):
    with open_client() as client:
        simulate_shop(client, users=2000, days=60, seed=5, start_date=date(2024, 1, 1), progress=False)
    dbt_run(warehouse_url)
    rows_before = len(snapshot())

    with open_client() as client:
        append_days(client, 10, progress=False)
        # A late login two days before the newest day, within the model's lookback.
        late = tmp_path / "late.csv"
        late.write_text("user_id,action,event_time\nlate-user,login,2024-03-08T12:00:00Z\n")
        ingest_file(client, "actions", late, progress=lambda message: None)

    dbt_run(warehouse_url)
    incremental = snapshot()
    dbt_run(warehouse_url, "--full-refresh")
    full_refresh = snapshot()

    assert len(incremental) > rows_before
    assert any(row[0] == "late-user" for row in incremental)
    assert incremental == full_refresh
