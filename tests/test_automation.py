"""Retries of passing failures, dbt source freshness checks, and the declarative automation conditions."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

import chdb_lock
from churn_assets.defs import retries
from churn_assets.defs.automation.freshness import CHECK_NAME, freshness_rules
from churn_assets.defs.dbt.project import dbt_project
from churn_assets.defs.resources import WarehouseResource
from churn_assets.warehouse import open_client
from churn_assets.warehouse.schema import ensure_raw_tables

# Retries


def busy_error() -> chdb_lock.WarehouseBusyError:
    return chdb_lock.WarehouseBusyError(Path("/warehouse"), "process 7 (dagster)", 600.0)


def test_passing_failures_are_told_apart_from_lasting_ones():
    wrapped = RuntimeError("scoring failed")
    wrapped.__cause__ = busy_error()

    assert retries.is_passing_failure(busy_error())
    assert retries.is_passing_failure(wrapped)
    assert retries.is_passing_failure(OperationalError("Error HTTPConnectionPool executing HTTP request attempt 1"))
    assert retries.is_passing_failure(DatabaseError("Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)"))
    assert retries.is_passing_failure(dg.Failure("dbt failed: Embedded warehouse /w is in use by process 9 (dbt)"))
    assert not retries.is_passing_failure(DatabaseError("Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)"))
    assert not retries.is_passing_failure(ValueError("bad feature date"))
    assert [retries.retry_delay_seconds(number) for number in range(3)] == [30.0, 60.0, 120.0]


def materialize_failing(errors: list[BaseException]) -> tuple[dg.ExecuteInProcessResult, list[int]]:
    """Materialize an asset that raises the given errors in turn, then succeeds."""
    attempts = []

    @dg.asset
    @retries.retried_on_passing_failures
    def flaky(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        attempts.append(context.retry_number)
        if len(attempts) <= len(errors):
            raise errors[len(attempts) - 1]
        return dg.MaterializeResult()

    return dg.materialize([flaky], raise_on_error=False), attempts


def test_busy_warehouse_is_retried_with_backoff(monkeypatch):
    monkeypatch.setattr(retries, "FIRST_DELAY_SECONDS", 0.01)

    result, attempts = materialize_failing([busy_error(), busy_error()])

    assert result.success
    assert attempts == [0, 1, 2]


def test_retries_give_up_with_the_last_error(monkeypatch):
    monkeypatch.setattr(retries, "FIRST_DELAY_SECONDS", 0.01)

    result, attempts = materialize_failing([busy_error()] * 5)

    assert not result.success
    assert attempts == [0, 1, 2, 3]
    assert "Gave up after 3 retries" in str(result.get_step_failure_events()[0].step_failure_data.error)


def test_lasting_failure_is_not_retried():
    result, attempts = materialize_failing([ValueError("feature date 2026-02-30 is not a date")])

    assert not result.success
    assert attempts == [0]
    assert "2026-02-30" in str(result.get_step_failure_events()[0].step_failure_data.error)


# Source freshness


def test_freshness_rules_follow_dbt_sources():
    rules = {rule.asset_key.to_user_string(): rule for rule in freshness_rules(dbt_project.manifest_path)}

    assert set(rules) == {"raw/purchases", "raw/user_actions"}
    assert (rules["raw/purchases"].warn_after_seconds, rules["raw/purchases"].error_after_seconds) == (2 * 86400, 7 * 86400)
    assert rules["raw/user_actions"].loaded_at_field == "event_at"
    assert rules["raw/user_actions"].row_filter == "action != 'offer_sent'"


def run_freshness_checks() -> dict[str, dg.AssetCheckEvaluation]:
    from churn_assets.definitions import raw_source_freshness

    result = dg.materialize(
        [raw_source_freshness, *[dg.AssetSpec(["raw", name]) for name in ("purchases", "user_actions")]],
        resources={"warehouse": WarehouseResource()},
        selection=dg.AssetSelection.checks(raw_source_freshness),
    )
    return {evaluation.asset_key.to_user_string(): evaluation for evaluation in result.get_asset_check_evaluations()}


def test_freshness_checks_warn_and_fail_like_dbt(warehouse_url):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with open_client() as client:
        ensure_raw_tables(client)
        client.insert(
            "raw.purchases", [["p1", "u1", now - timedelta(days=3), 10.0]],
            column_names=["purchase_id", "user_id", "purchased_at", "purchase_value"],
        )
        client.insert(
            "raw.user_actions",
            [["e1", "u1", "login", now - timedelta(days=5)], ["e2", "u1", "offer_sent", now]],
            column_names=["event_id", "user_id", "action", "event_at"],
        )

    evaluations = run_freshness_checks()

    purchases, actions = evaluations["raw/purchases"], evaluations["raw/user_actions"]
    assert {purchases.check_name, actions.check_name} == {CHECK_NAME}
    assert (purchases.passed, purchases.severity) == (False, dg.AssetCheckSeverity.WARN)
    # The offer_sent action written just now does not count as fresh shop activity.
    assert (actions.passed, actions.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert actions.metadata["age_hours"].value == pytest.approx(120, abs=0.1)


# Declarative automation


def requested_after(instance, cursor, updated: list[str]) -> tuple[set[str], object]:
    from churn_assets.definitions import defs

    for key in updated:
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {evaluation.key.to_user_string() for evaluation in result.results if evaluation.true_subset.size}
    return requested, result.cursor


def test_new_champion_alone_triggers_rescoring():
    from churn_assets.definitions import defs

    asset_graph = defs.resolve_asset_graph()
    pipeline = [key.to_user_string() for key in asset_graph.materializable_asset_keys]
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = requested_after(instance, None, pipeline)
        together, cursor = requested_after(instance, cursor, pipeline)
        champion_only, cursor = requested_after(instance, cursor, ["deployed_model"])

    assert together == set()
    assert champion_only == {"churn_scores", "discount_offers", "offer_redemption", "campaign_lift"}
