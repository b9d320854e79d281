"""The synthetic shop in real embedded warehouses: determinism, continuation, churn signal, offers, files."""

import argparse
import hashlib
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from churn_assets.ingest.loader import ingest_file
from churn_assets.simulate import (
    add_simulate_arguments,
    append_days,
    run_simulate_command,
    simulate_shop,
    simulate_to_files,
    true_churn_probabilities,
)
from churn_assets.simulate import sim_tables
from churn_assets.warehouse import open_client
from churn_assets.warehouse.schema import ensure_pipeline_tables
from churn_assets.warehouse.settings import parse_url

SEED = 11
START = date(2024, 1, 1)


def quiet(message):
    pass


def open_warehouse(folder):
    return open_client(parse_url(f"chdb://{folder}"))


def read_events(client) -> dict[str, pd.DataFrame]:
    """Return every simulated event and offer outcome, in id order, without load metadata."""
    return {
        "purchases": client.query_df(
            "SELECT purchase_id, user_id, purchased_at, toString(purchase_value) AS value, discount_code "
            "FROM raw.purchases FINAL ORDER BY purchase_id"
        ),
        "actions": client.query_df(
            "SELECT event_id, user_id, action, event_at FROM raw.user_actions FINAL ORDER BY event_id"
        ),
        "offer_truth": client.query_df(
            "SELECT * EXCEPT updated_day FROM sim.offer_truth FINAL ORDER BY campaign_id, user_id"
        ),
    }


def assert_same_events(first: dict[str, pd.DataFrame], second: dict[str, pd.DataFrame]) -> None:
    for name in first:
        assert len(first[name]) == len(second[name]), name
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)


def insert_offers(client, user_ids, created_at: datetime, validity_days: int, campaign_id: str = "test-campaign") -> pd.DataFrame:
    """Insert one offer per user into analytics.discount_offers, half of them control by a hash of the id."""
    ensure_pipeline_tables(client)
    user_ids = list(user_ids)
    offers = pd.DataFrame({
        "offer_id": [hashlib.sha256(f"{campaign_id}/{user}".encode()).hexdigest()[:24] for user in user_ids],
        "campaign_id": campaign_id,
        "user_id": user_ids,
        "offer_group": [
            "control" if hashlib.sha256(f"control/{user}".encode()).digest()[0] % 2 else "treatment" for user in user_ids
        ],
        "tier": "base",
        "discount_percent": 20,
        "discount_code": [f"SAVE20-{campaign_id}-{user}" for user in user_ids],
        "churn_probability": 0.9,
        "model_version": "test",
        "scoring_run_id": "test",
        "created_at": created_at,
        "expires_at": created_at + timedelta(days=validity_days),
    })
    client.insert_df("analytics.discount_offers", offers)
    return offers


def test_same_seed_same_shop(tmp_path):
    events = []
    for name, seed in (("first", SEED), ("second", SEED), ("other", SEED + 1)):
        with open_warehouse(tmp_path / name) as client:
            summary = simulate_shop(client, users=400, days=30, seed=seed, progress=False)
            events.append(read_events(client))
        assert summary.purchases > 0

    first, second, other = events
    assert_same_events(first, second)
    assert first["purchases"]["value"].tolist() != other["purchases"]["value"].tolist()


def test_append_equals_longer_run(tmp_path):
    # Offers created on day 6 and valid for 8 days span the boundary between the two runs.
    offer_users = [f"u{index:07d}" for index in range(0, 300, 2)]
    created_at = datetime(2024, 1, 7, tzinfo=timezone.utc)

    with open_warehouse(tmp_path / "appended") as client:
        insert_offers(client, offer_users, created_at, validity_days=8)
        simulate_shop(client, users=300, days=10, seed=SEED, progress=False)
        appended = append_days(client, days=5, progress=False)
        appended_events = read_events(client)
        appended_state = client.query_df("SELECT * FROM sim.user_state WHERE checkpoint_day = 15 ORDER BY user_index")
        checkpoints = client.query("SELECT DISTINCT checkpoint_day FROM sim.user_state").result_rows

    with open_warehouse(tmp_path / "direct") as client:
        insert_offers(client, offer_users, created_at, validity_days=8)
        simulate_shop(client, users=300, days=15, seed=SEED, progress=False)
        direct_events = read_events(client)
        direct_state = client.query_df("SELECT * FROM sim.user_state WHERE checkpoint_day = 15 ORDER BY user_index")

    assert appended.first_date == date(2024, 1, 11)
    assert appended.last_date == date(2024, 1, 15)
    assert checkpoints == [(15,)]
    assert len(direct_events["offer_truth"]) == len(offer_users)
    assert direct_events["offer_truth"]["redeemed"].sum() > 0
    assert_same_events(appended_events, direct_events)
    pd.testing.assert_frame_equal(appended_state, direct_state)


def test_rerun_after_stopped_run_adds_nothing(tmp_path, monkeypatch):
    def fail_checkpoint(*arguments):
        raise RuntimeError("stopped before the checkpoint")

    with open_warehouse(tmp_path / "stopped") as client:
        simulate_shop(client, users=300, days=5, seed=SEED, progress=False)
        with monkeypatch.context() as patch:
            patch.setattr(sim_tables, "save_checkpoint", fail_checkpoint)
            with pytest.raises(RuntimeError):
                append_days(client, days=5, progress=False)
        append_days(client, days=5, progress=False)
        rerun_events = read_events(client)
        rows, distinct = client.query("SELECT count(), uniqExact(event_id) FROM raw.user_actions").result_rows[0]

    with open_warehouse(tmp_path / "direct") as client:
        simulate_shop(client, users=300, days=10, seed=SEED, progress=False)
        direct_events = read_events(client)

    assert rows == distinct
    assert_same_events(rerun_events, direct_events)


def test_simulate_shop_rejects_second_shop(client):
    simulate_shop(client, users=50, days=3, seed=SEED, progress=False)
    with pytest.raises(ValueError, match="already contains a simulated shop"):
        simulate_shop(client, users=50, days=3, seed=SEED + 1, progress=False)


def test_events_have_contract_shape(client):
    summary = simulate_shop(client, users=2000, days=60, seed=SEED, progress=False)

    actions = dict(client.query("SELECT action, count() FROM raw.user_actions GROUP BY action").result_rows)
    purchases, zero_value, negative, coded, first_at, last_at = client.query(
        "SELECT count(), countIf(purchase_value = 0), countIf(purchase_value < 0), countIf(discount_code IS NOT NULL), "
        "min(purchased_at), max(purchased_at) FROM raw.purchases"
    ).result_rows[0]

    assert set(actions) == {"login", "add_to_cart"}
    assert actions["login"] + actions["add_to_cart"] == summary.actions
    assert purchases == summary.purchases
    assert negative == 0
    assert zero_value < 0.01 * purchases
    assert coded == 0
    assert first_at >= datetime(2024, 1, 1)
    assert last_at < datetime(2024, 3, 1)

    # Users sign up over time, so many users are first seen after the first two weeks.
    seen_by_day = client.query(
        "SELECT toDate(first_seen) AS day, count() FROM (SELECT min(event_at) AS first_seen FROM raw.user_actions "
        "GROUP BY user_id) GROUP BY day ORDER BY day"
    ).result_rows
    assert sum(count for day, count in seen_by_day if day >= date(2024, 1, 15)) > 100


def test_activity_decays_before_churn(client):
    simulate_shop(client, users=3000, days=150, seed=SEED, progress=False)
    oracle = true_churn_probabilities(client, START + timedelta(days=90), window_days=60)
    daily = client.query_df(
        "SELECT user_id, "
        "countIf(action = 'login' AND event_at >= '2024-03-01' AND event_at < '2024-03-31') AS logins_last_30, "
        "countIf(action = 'login' AND event_at >= '2024-01-31' AND event_at < '2024-03-01') AS logins_previous_30, "
        "countIf(action = 'add_to_cart' AND event_at >= '2024-03-01' AND event_at < '2024-03-31') AS carts_last_30 "
        "FROM raw.user_actions GROUP BY user_id"
    )
    purchases = client.query_df(
        "SELECT user_id, count() AS purchases_last_30 FROM raw.purchases "
        "WHERE purchased_at >= '2024-03-01' AND purchased_at < '2024-03-31' GROUP BY user_id"
    )
    # Only users seen in both 30-day periods before the cutoff (2024-03-31) are compared.
    frame = oracle.merge(daily, on="user_id").merge(purchases, on="user_id", how="left").fillna({"purchases_last_30": 0})
    frame = frame[frame["logins_previous_30"] > 0]
    churned = frame[frame["is_churned"] == 1]
    retained = frame[frame["is_churned"] == 0]

    assert len(churned) > 100
    assert len(retained) > 100
    churned_ratio = churned["logins_last_30"].sum() / churned["logins_previous_30"].sum()
    retained_ratio = retained["logins_last_30"].sum() / retained["logins_previous_30"].sum()
    assert churned_ratio < 0.8
    assert churned_ratio < retained_ratio - 0.2
    assert churned["activity_at_cutoff"].mean() < retained["activity_at_cutoff"].mean()
    # Cart abandonment: the share of cart adds in the last 30 days that did not become a purchase.
    churned_abandonment = 1 - churned["purchases_last_30"].sum() / churned["carts_last_30"].sum()
    retained_abandonment = 1 - retained["purchases_last_30"].sum() / retained["carts_last_30"].sum()
    assert churned_abandonment > retained_abandonment + 0.03


def test_oracle_matches_outcomes(client):
    simulate_shop(client, users=4000, days=150, seed=SEED, progress=False)
    oracle = true_churn_probabilities(client, START + timedelta(days=90), window_days=60, store=True)

    outcome = oracle["is_churned"].astype(int).to_numpy()
    probability = oracle["churn_probability"].to_numpy()
    churned_scores = probability[outcome == 1]
    retained_scores = probability[outcome == 0]
    # ROC AUC as the share of (churned, retained) pairs ranked correctly.
    ranks = pd.Series(np.concatenate([churned_scores, retained_scores])).rank().to_numpy()
    auc = (ranks[: len(churned_scores)].sum() - len(churned_scores) * (len(churned_scores) + 1) / 2) / (
        len(churned_scores) * len(retained_scores)
    )

    assert len(oracle) > 2500
    assert ((probability >= 0) & (probability <= 1)).all()
    assert abs(probability.mean() - outcome.mean()) < 0.03
    assert auc > 0.8
    assert client.command("SELECT count() FROM sim.churn_oracle") == len(oracle)


def test_oracle_outcome_missing_past_last_day(client):
    simulate_shop(client, users=200, days=20, seed=SEED, progress=False)
    oracle = true_churn_probabilities(client, START + timedelta(days=10), window_days=30)

    assert oracle["is_churned"].isna().all()
    with pytest.raises(ValueError, match="outside the simulated days"):
        true_churn_probabilities(client, START + timedelta(days=21), window_days=30)


def test_redemptions_only_treatment_within_validity(client):
    simulate_shop(client, users=4000, days=60, seed=SEED, progress=False)
    signed_up = true_churn_probabilities(client, START + timedelta(days=60), window_days=20)["user_id"]
    created_at = datetime(2024, 3, 1, tzinfo=timezone.utc)
    insert_offers(client, signed_up, created_at, validity_days=20)

    summary = append_days(client, days=30, progress=False)

    invalid = client.query(
        "SELECT count() FROM raw.purchases AS purchases "
        "LEFT JOIN analytics.discount_offers AS offers ON purchases.discount_code = offers.discount_code "
        "WHERE purchases.discount_code IS NOT NULL AND NOT (offers.offer_group = 'treatment' "
        "AND offers.user_id = purchases.user_id AND purchases.purchased_at > offers.created_at "
        "AND purchases.purchased_at <= offers.expires_at)"
    ).result_rows[0][0]
    coded, codes = client.query(
        "SELECT count(), uniqExact(discount_code) FROM raw.purchases WHERE discount_code IS NOT NULL"
    ).result_rows[0]
    truth = client.query_df("SELECT * FROM sim.offer_truth FINAL")
    control = truth[truth["offer_group"] == "control"]
    treatment = truth[truth["offer_group"] == "treatment"]

    assert summary.offers_activated == len(signed_up)
    assert coded > 0
    assert invalid == 0
    assert coded == codes
    assert coded == treatment["redeemed"].sum()
    assert control["redeemed"].sum() == 0
    assert control["persuaded"].sum() == 0
    assert (treatment.loc[treatment["persuaded"] == 1, "redeemed"] == 1).all()


def test_offer_lift_matches_truth(client):
    simulate_shop(client, users=6000, days=60, seed=SEED, progress=False)
    signed_up = true_churn_probabilities(client, START + timedelta(days=60), window_days=20)["user_id"]
    created_at = datetime(2024, 3, 1, tzinfo=timezone.utc)
    insert_offers(client, signed_up, created_at, validity_days=20)
    append_days(client, days=25, progress=False)

    # Share of users with any purchase within the validity, by group, against the recorded truth.
    groups = client.query_df(
        "SELECT truth.offer_group AS offer_group, count() AS users, avg(bought.user_id != '') AS purchase_rate, "
        "avg(truth.uplift_probability) AS expected_uplift "
        "FROM sim.offer_truth AS truth FINAL "
        "LEFT JOIN (SELECT DISTINCT user_id FROM raw.purchases WHERE purchased_at > '2024-03-01 00:00:00' "
        "AND purchased_at <= '2024-03-21 00:00:00') AS bought ON truth.user_id = bought.user_id "
        "GROUP BY offer_group"
    ).set_index("offer_group")
    treatment, control = groups.loc["treatment"], groups.loc["control"]
    observed_lift = treatment["purchase_rate"] - control["purchase_rate"]
    expected_lift = (treatment["expected_uplift"] + control["expected_uplift"]) / 2
    standard_error = np.sqrt(
        treatment["purchase_rate"] * (1 - treatment["purchase_rate"]) / treatment["users"]
        + control["purchase_rate"] * (1 - control["purchase_rate"]) / control["users"]
    )

    assert expected_lift > 0.02
    assert abs(observed_lift - expected_lift) < 3 * standard_error


@pytest.mark.parametrize("file_format", ["csv", "parquet", "jsonl"])
def test_files_load_without_rejections(client, tmp_path, file_format):
    folder = tmp_path / "files"
    summary = simulate_to_files(folder, users=300, days=20, seed=SEED, file_format=file_format, progress=False)

    purchases = ingest_file(client, "purchases", folder / f"purchases.{file_format}", progress=quiet)
    actions = ingest_file(client, "actions", folder / f"user_actions.{file_format}", progress=quiet)

    assert purchases.rows_rejected == 0
    assert actions.rows_rejected == 0
    assert purchases.rows_loaded == summary.purchases
    assert actions.rows_loaded == summary.actions
    assert client.command("SELECT count() FROM raw.purchases WHERE startsWith(purchase_id, 'sim-11-')") == summary.purchases


def test_files_match_warehouse_events(client, tmp_path):
    folder = tmp_path / "files"
    simulate_to_files(folder, users=300, days=20, seed=SEED, file_format="parquet", progress=False)
    simulate_shop(client, users=300, days=20, seed=SEED, progress=False)

    from_file = pd.read_parquet(folder / "purchases.parquet").sort_values("purchase_id").reset_index(drop=True)
    in_warehouse = client.query_df(
        "SELECT purchase_id, user_id, formatDateTime(purchased_at, '%Y-%m-%dT%H:%i:%SZ') AS purchase_date, "
        "purchase_value FROM raw.purchases ORDER BY purchase_id"
    )

    assert list(from_file.columns) == ["user_id", "purchase_date", "purchase_value", "purchase_id", "discount_code"]
    assert from_file["purchase_id"].tolist() == in_warehouse["purchase_id"].tolist()
    assert from_file["user_id"].tolist() == in_warehouse["user_id"].tolist()
    assert from_file["purchase_date"].tolist() == in_warehouse["purchase_date"].tolist()
    assert from_file["purchase_value"].tolist() == in_warehouse["purchase_value"].tolist()


def test_files_not_overwritten(tmp_path):
    simulate_to_files(tmp_path, users=20, days=2, seed=SEED, file_format="csv", progress=False)
    with pytest.raises(ValueError, match="already exist"):
        simulate_to_files(tmp_path, users=20, days=2, seed=SEED, file_format="csv", progress=False)


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="churn simulate")
    add_simulate_arguments(parser)
    return run_simulate_command(parser.parse_args(list(argv)))


def test_command_simulates_and_appends(warehouse_url, capsys):
    assert run_command("--users", "200", "--days", "10", "--seed", "3", "--start-date", "2023-06-01", "--no-progress") == 0
    assert run_command("--append-days", "4", "--no-progress") == 0

    output = capsys.readouterr().out
    assert "Simulated 10 days (2023-06-01 to 2023-06-10) of 200 users, seed 3" in output
    assert "Simulated 4 days (2023-06-11 to 2023-06-14)" in output
    with open_client() as client:
        days, last_date = client.query(
            "SELECT days_simulated, last_simulated_date FROM sim.run_parameters ORDER BY days_simulated DESC LIMIT 1"
        ).result_rows[0]
    assert days == 14
    assert last_date == date(2023, 6, 14)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "10"], "missing --days"),
        (["--append-days", "3", "--users", "10"], "cannot be combined with --users"),
        (["--append-days", "3", "--seed", "4"], "cannot be combined with --seed"),
        (["--users", "10", "--days", "3", "--format", "csv"], "--format applies only to files"),
        (["--append-days", "3"], "No simulated shop found in the warehouse"),
        (["--users", "0", "--days", "3"], "--users must be at least 1"),
    ],
)
def test_command_rejects_invalid_arguments(warehouse_url, capsys, argv, message):
    assert run_command(*argv, "--no-progress") == 2
    assert message in capsys.readouterr().err


def test_command_writes_files(tmp_path, capsys):
    folder = tmp_path / "out"
    assert run_command("--users", "50", "--days", "5", "--to-folder", str(folder), "--format", "csv", "--no-progress") == 0
    assert (folder / "purchases.csv").is_file()
    assert (folder / "user_actions.csv").is_file()
    header = (folder / "user_actions.csv").read_text().splitlines()[0]
    assert header == '"user_id","action","event_time","event_id","discount_code","value"'
