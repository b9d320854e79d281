"""The whole loop on a simulated shop: offers go out, simulated customers redeem them, and the
campaign lift the marts measure agrees with the effect the simulator was given."""

from datetime import date

import dagster as dg
import pytest

from churn_assets.cli import prepare_dbt_manifest
from churn_assets.simulate import append_days, simulate_shop
from churn_assets.warehouse import open_client

pytestmark = pytest.mark.slow


def run_job(name: str) -> None:
    from churn_assets.definitions import defs

    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, f"job {name} failed"


def test_campaign_lift_matches_simulated_effect(warehouse_url):
    with open_client() as client:
        simulate_shop(client, users=20_000, days=300, seed=23, start_date=date(2024, 1, 1), progress=False)
    prepare_dbt_manifest()

    run_job("churn_pipeline")
    with open_client() as client:
        campaign_id, treated, control = client.query(
            "SELECT campaign_id, countIf(offer_group = 'treatment'), countIf(offer_group = 'control') "
            "FROM analytics.discount_offers FINAL GROUP BY campaign_id"
        ).result_rows[0]
        assert treated > 0
        assert abs(control / (treated + control) - 0.1) < 0.01 or treated + control < 2000

        append_days(client, 35, progress=False)
        redeemed_by_control = client.command(
            "SELECT count() FROM raw.purchases WHERE discount_code IN "
            "(SELECT discount_code FROM analytics.discount_offers FINAL WHERE offer_group = 'control')"
        )
        assert redeemed_by_control == 0

    run_job("churn_refresh")
    with open_client() as client:
        lift, lower, upper = client.query(
            "SELECT retention_lift, retention_lift_lower_95, retention_lift_upper_95 FROM analytics.campaign_lift "
            "WHERE campaign_id = {campaign:String}",
            parameters={"campaign": campaign_id},
        ).result_rows[0]
        true_effect = float(client.command(
            "SELECT avg(uplift_probability) FROM sim.offer_truth FINAL WHERE campaign_id = {campaign:String}",
            parameters={"campaign": campaign_id},
        ))
        redemptions = int(client.command("SELECT sum(count_redemptions) FROM analytics.offer_redemption"))

    print(f"campaign {campaign_id}: lift {lift:.4f} [{lower:.4f}, {upper:.4f}], simulated effect {true_effect:.4f}")
    assert redemptions > 0
    assert lower <= true_effect <= upper
