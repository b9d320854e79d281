"""Offer decisions, control assignment and discount codes, without a warehouse."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from churn_assets.offers.codes import discount_code, is_control
from churn_assets.offers.policy import OfferPolicy, PriorOffers, Tier, decide_offers

CREATED_AT = datetime(2024, 6, 1, tzinfo=timezone.utc)


def scores_frame(count: int, probability: float = 0.9, has_purchased: int = 1) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [f"user-{index:05d}" for index in range(count)],
        "churn_probability": probability,
        "model_version": "v1",
        "scoring_run_id": "run-1",
        "has_purchased": has_purchased,
    })


def test_only_users_above_threshold_get_offers():
    scores = pd.concat([scores_frame(3, 0.95), scores_frame(3, 0.8).assign(user_id=["a", "b", "c"])])
    decisions = decide_offers(scores, OfferPolicy(control_share=0), "c1", CREATED_AT, b"key", PriorOffers())
    assert len(decisions.offers) == 3
    assert (decisions.offers["churn_probability"] > 0.8).all()


def test_highest_matching_tier_wins():
    policy = OfferPolicy(tiers=(Tier("high", 0.8, 20), Tier("very_high", 0.95, 30)), control_share=0)
    scores = scores_frame(2).assign(churn_probability=[0.9, 0.97])
    offers = decide_offers(scores, policy, "c1", CREATED_AT, b"key", PriorOffers()).offers
    assert offers["discount_percent"].tolist() == [30, 20]
    assert offers["tier"].tolist() == ["very_high", "high"]


def test_exclusions_are_counted():
    scores = scores_frame(4)
    scores.loc[0, "has_purchased"] = 0
    scores = pd.concat([scores, scores_frame(1).assign(user_id="opted")])
    prior = PriorOffers(already_in_campaign={"user-00001"}, holding_unexpired_offer={"user-00002"}, opted_out={"opted"})
    decisions = decide_offers(scores, OfferPolicy(), "c1", CREATED_AT, b"key", prior)
    assert decisions.offers["user_id"].tolist() == ["user-00003"]
    assert decisions.excluded == {"already_in_campaign": 1, "opted_out": 1, "never_purchased": 1, "unexpired_offer": 1}


def test_recent_offer_excluded_when_spacing_set():
    prior = PriorOffers(offered_recently={"user-00000"})
    spaced = decide_offers(scores_frame(2), OfferPolicy(min_days_between_offers=60), "c1", CREATED_AT, b"key", prior)
    unspaced = decide_offers(scores_frame(2), OfferPolicy(), "c1", CREATED_AT, b"key", prior)
    assert spaced.offers["user_id"].tolist() == ["user-00001"]
    assert len(unspaced.offers) == 2


def test_campaign_budget_keeps_highest_probabilities():
    scores = scores_frame(100).assign(churn_probability=[0.81 + index * 0.001 for index in range(100)])
    policy = OfferPolicy(control_share=0.1, max_offers_per_campaign=30)
    decisions = decide_offers(scores, policy, "c1", CREATED_AT, b"key", PriorOffers(treated_in_campaign=10))
    treated = decisions.offers[decisions.offers["offer_group"] == "treatment"]
    assert len(treated) == 20
    assert treated["churn_probability"].min() > scores["churn_probability"].median()
    assert decisions.excluded["over_budget"] > 0


def test_control_share_close_to_setting():
    decisions = decide_offers(scores_frame(20_000), OfferPolicy(control_share=0.1), "c1", CREATED_AT, b"key", PriorOffers())
    control_share = (decisions.offers["offer_group"] == "control").mean()
    assert abs(control_share - 0.1) < 0.01


def test_codes_unique_stable_and_keyed():
    users = [f"user-{index}" for index in range(5000)]
    codes = {discount_code(b"key", "c1", user, "SAVE", 20) for user in users}
    assert len(codes) == len(users)
    assert discount_code(b"key", "c1", "u1", "SAVE", 20) == discount_code(b"key", "c1", "u1", "SAVE", 20)
    assert discount_code(b"key", "c1", "u1", "SAVE", 20) != discount_code(b"other", "c1", "u1", "SAVE", 20)
    assert discount_code(b"key", "c1", "u1", "SAVE", 20) != discount_code(b"key", "c2", "u1", "SAVE", 20)
    assert discount_code(b"key", "c1", "u1", "SAVE", 20).startswith("SAVE20-")


def test_control_assignment_deterministic():
    assert is_control("c1", "u1", 0.5) == is_control("c1", "u1", 0.5)
    assert not is_control("c1", "u1", 0.0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tiers": ()}, "at least one tier"),
        ({"tiers": (Tier("t", 1.2, 20),)}, "min_probability"),
        ({"tiers": (Tier("t", 0.5, 0),)}, "discount_percent"),
        ({"control_share": 1.0}, "control_share"),
        ({"validity_days": 0}, "validity_days"),
    ],
)
def test_invalid_policy_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        OfferPolicy(**options)


def test_policy_file_example_loads():
    from conftest import REPO_ROOT
    from churn_assets.offers.policy_file import load_policy

    policy = load_policy(REPO_ROOT / "offer_policy.example.yaml")
    assert [tier.discount_percent for tier in policy.tiers] == [20, 30]
    assert policy.control_share == 0.1


def test_policy_file_unknown_key_rejected(tmp_path):
    from churn_assets.offers.policy_file import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("tiers: [{name: t, min_probability: 0.8, discount_percent: 20}]\nbudget_euros: 5\n")
    with pytest.raises(ValueError, match="unknown keys: budget_euros"):
        load_policy(path)


def test_policy_file_incomplete_tier_rejected(tmp_path):
    from churn_assets.offers.policy_file import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("tiers: [{name: t, min_probability: 0.8}]\n")
    with pytest.raises(ValueError, match="each tier needs"):
        load_policy(path)


def test_export_and_log_notifier(tmp_path):
    import json

    from churn_assets.offers.export import EXPORT_COLUMNS, LogNotifier, write_export

    offers = pd.DataFrame([{
        "offer_id": "o1", "campaign_id": "c1", "user_id": "007", "discount_code": "SAVE20-AAAA", "discount_percent": 20,
        "tier": "base", "churn_probability": 0.9, "created_at": "2024-06-01T00:00:00Z", "expires_at": "2024-07-01T00:00:00Z",
    }])[EXPORT_COLUMNS]
    csv_path, jsonl_path = write_export(offers, "c1", tmp_path)
    assert pd.read_csv(csv_path, dtype={"user_id": str})["user_id"].tolist() == ["007"]
    assert json.loads(jsonl_path.read_text().splitlines()[0])["discount_code"] == "SAVE20-AAAA"

    outbox = tmp_path / "c1" / "outbox.jsonl"
    assert LogNotifier(outbox).send(offers) == 1
    assert LogNotifier(outbox).send(offers.iloc[0:0]) == 0
    assert len(outbox.read_text().splitlines()) == 1
