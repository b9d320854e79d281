"""The no-leakage dbt test fails when a feature reads past its cutoff (a test of the test)."""

import shutil
import subprocess

import pytest

from churn_assets.ingest.loader import ingest_file
from churn_assets.warehouse import open_client
from conftest import REPO_ROOT, subprocess_environment

pytestmark = pytest.mark.slow

LEAKAGE_TEST = "assert_training_features_before_cutoff"
CUTOFF_FILTER = "where activity.activity_date < snapshot.as_of_date"


def copy_dbt_project(destination):
    shutil.copytree(
        REPO_ROOT / "dbt_project", destination,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    return destination


def build_leakage_test(project_dir, warehouse_url):
    return subprocess.run(
        ["dbt", "--no-use-colors", "build", "--exclude", "test_type:unit"],
        cwd=project_dir, env=subprocess_environment(CHURN_WAREHOUSE_URL=warehouse_url),
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def cdnow_warehouse(warehouse_url, cdnow_file):
    with open_client() as client:
        ingest_file(client, "cdnow", cdnow_file, progress=lambda message: None)
    return warehouse_url


def test_leakage_test_passes_on_real_features(cdnow_warehouse, tmp_path):
    project_dir = copy_dbt_project(tmp_path / "dbt_project")
    completed = build_leakage_test(project_dir, cdnow_warehouse)
    assert completed.returncode == 0, completed.stdout[-3000:]
    passing_lines = [line for line in completed.stdout.splitlines() if " PASS " in line]
    assert any(LEAKAGE_TEST in line for line in passing_lines)


def test_leakage_test_catches_feature_reading_past_cutoff(cdnow_warehouse, tmp_path):
    project_dir = copy_dbt_project(tmp_path / "dbt_project")
    macro = project_dir / "macros" / "user_features_at.sql"
    source = macro.read_text()
    assert CUTOFF_FILTER in source
    # Let every feature read 30 days past its cutoff.
    macro.write_text(source.replace(CUTOFF_FILTER, CUTOFF_FILTER + " + 30"))

    completed = build_leakage_test(project_dir, cdnow_warehouse)

    assert completed.returncode != 0
    failing_lines = [line for line in completed.stdout.splitlines() if " FAIL " in line]
    assert any(LEAKAGE_TEST in line for line in failing_lines), completed.stdout[-3000:]
