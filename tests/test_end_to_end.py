"""The whole pipeline on CDNOW, through the same entry points a person uses: `churn demo`,
`dbt build` in dbt_project/, and `dagster asset materialize` over the whole graph."""

import subprocess
import sys

import pytest

from conftest import CDNOW_FILE, REPO_ROOT, subprocess_environment

pytestmark = pytest.mark.slow


def run(command, environment, cwd=REPO_ROOT, timeout=900):
    completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"{' '.join(map(str, command))} failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    return completed


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run `churn demo` once on CDNOW in a private warehouse and Dagster home."""
    if not CDNOW_FILE.is_file():
        pytest.skip(f"CDNOW file not found at {CDNOW_FILE}")
    root = tmp_path_factory.mktemp("pipeline")
    database_path = root / "warehouse" / "chdb"
    environment = subprocess_environment(
        CHURN_WAREHOUSE_URL=f"chdb://{database_path}",
        CHURN_MODEL_DIR=str(root / "models"),
        CHURN_OFFER_CODE_KEY="end-to-end-test-key",
        DAGSTER_HOME=str(root / "dagster_home"),
    )
    (root / "dagster_home").mkdir()
    demo = run([sys.executable, "-m", "churn_assets.cli", "demo", "--cdnow", str(CDNOW_FILE), "--warehouse", str(database_path)], environment)
    return {"environment": environment, "demo_output": demo.stdout, "dagster_home": root / "dagster_home"}


def query(environment, sql):
    from churn_assets.warehouse import open_client
    from churn_assets.warehouse.settings import parse_url

    with open_client(parse_url(environment["CHURN_WAREHOUSE_URL"])) as client:
        return client.query(sql).result_rows


def test_demo_prints_summary(pipeline):
    output = pipeline["demo_output"]
    assert "Rows per table" in output
    assert "held-out ROC AUC" in output
    assert "Demo finished" in output


def test_user_features_one_row_per_customer(pipeline):
    rows, users, minimum_days, whole_days = query(
        pipeline["environment"],
        "SELECT count(), uniqExact(user_id), min(days_since_last_purchase), "
        "toTypeName(days_since_last_purchase) FROM analytics.user_features GROUP BY ALL",
    )[0]
    assert rows == 23_570
    assert users == 23_570
    assert minimum_days >= 0
    assert whole_days.startswith(("Int", "UInt"))


def test_scores_cover_every_user(pipeline):
    rows, users, lowest, highest, versions = query(
        pipeline["environment"],
        "SELECT count(), uniqExact(user_id), min(churn_probability), max(churn_probability), "
        "uniqExactIf(model_version, model_version != '') FROM analytics.latest_churn_scores",
    )[0]
    assert rows == 23_570
    assert users == 23_570
    assert 0 <= lowest <= highest <= 1
    assert versions == 1


def test_offers_above_threshold_with_unique_codes(pipeline):
    offers, codes, lowest = query(
        pipeline["environment"],
        "SELECT count(), uniqExact(discount_code), min(churn_probability) FROM analytics.discount_offers FINAL",
    )[0]
    assert offers > 0
    assert codes == offers
    assert lowest > 0.8


def test_offer_sent_actions_match_treatment(pipeline):
    treated = query(pipeline["environment"], "SELECT count() FROM analytics.discount_offers FINAL WHERE offer_group = 'treatment'")[0][0]
    sent = query(pipeline["environment"], "SELECT count() FROM raw.user_actions WHERE action = 'offer_sent'")[0][0]
    redemption_rows = query(pipeline["environment"], "SELECT count() FROM analytics.offer_redemption")[0][0]
    assert sent == treated
    assert redemption_rows == treated


def test_model_metadata_has_auc_and_baseline(pipeline, monkeypatch):
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(pipeline["dagster_home"]))
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("churn_model"))
    metadata = event.asset_materialization.metadata
    assert 0.5 < metadata["roc_auc"].value <= 1
    assert 0.5 < metadata["recency_baseline_roc_auc"].value <= 1
    assert "data:image/png;base64" in metadata["roc_curves"].value


def test_dbt_tables_report_row_counts_and_checks(pipeline, monkeypatch):
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(pipeline["dagster_home"]))
    with dg.DagsterInstance.get() as instance:
        features = instance.get_latest_materialization_event(dg.AssetKey("user_features")).asset_materialization
        staging = instance.get_latest_materialization_event(dg.AssetKey("stg_purchases")).asset_materialization
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("user_features"), "unique_user_features_user_id")]
        )
    assert features.metadata["dagster/row_count"].value == 23_570
    assert "dagster/row_count" not in staging.metadata
    assert list(check.values())[0].status.value == "SUCCEEDED"


def test_dbt_build_in_project_folder(pipeline):
    completed = run(["dbt", "build"], pipeline["environment"], cwd=REPO_ROOT / "dbt_project")
    assert "Completed successfully" in completed.stdout


def test_dagster_materialize_whole_graph_then_offers_again(pipeline):
    environment = pipeline["environment"]
    materialize = ["dagster", "asset", "materialize", "-m", "churn_assets.definitions", "--select"]

    # A retrained model scores users differently, so new users can cross the threshold, but no user
    # gets a second decision in the same campaign.
    run(materialize + ["*"], environment)
    decisions, users, codes = query(
        environment, "SELECT count(), uniqExact(campaign_id, user_id), uniqExact(discount_code) FROM analytics.discount_offers"
    )[0]
    assert decisions == users == codes
    assert query(environment, "SELECT count() FROM analytics.scoring_runs FINAL")[0][0] == 2
    assert query(environment, "SELECT count() FROM analytics.model_registry FINAL WHERE status = 'champion'")[0][0] == 1

    # Rerunning the offers asset on the same scores changes no row.
    offers_before = query(environment, "SELECT count() FROM analytics.discount_offers")[0][0]
    actions_before = query(environment, "SELECT count() FROM raw.user_actions")[0][0]
    run(materialize + ["discount_offers"], environment)
    assert query(environment, "SELECT count() FROM analytics.discount_offers")[0][0] == offers_before
    assert query(environment, "SELECT count() FROM raw.user_actions")[0][0] == actions_before
    treated = query(environment, "SELECT count() FROM analytics.discount_offers FINAL WHERE offer_group = 'treatment'")[0][0]
    assert query(environment, "SELECT count() FROM raw.user_actions WHERE action = 'offer_sent'")[0][0] == treated
