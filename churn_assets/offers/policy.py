"""Turn churn probabilities into offer decisions: tiers, exclusions, control group and codes."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from churn_assets.offers.codes import discount_code, offer_id
from churn_assets.offers.codes import is_control as is_control_user


@dataclass(frozen=True)
class Tier:
    """Users with a churn probability above `min_probability` get `discount_percent` off."""

    name: str
    min_probability: float
    discount_percent: int


@dataclass(frozen=True)
class OfferPolicy:
    """Offer rules: tiers, code prefix, validity, control share and exclusions."""

    tiers: tuple[Tier, ...] = (Tier("high_risk", 0.8, 20),)
    code_prefix: str = "SAVE"
    validity_days: int = 30
    control_share: float = 0.1
    exclude_never_purchased: bool = True
    exclude_unexpired_offers: bool = True
    min_days_between_offers: int = 0
    max_offers_per_campaign: int | None = None
    opt_out_file: str = ""

    def __post_init__(self):
        if not self.tiers:
            raise ValueError("An offer policy needs at least one tier.")
        for tier in self.tiers:
            if not 0 <= tier.min_probability < 1:
                raise ValueError(f"Tier {tier.name}: min_probability {tier.min_probability} is not in [0, 1).")
            if not 0 < tier.discount_percent <= 100:
                raise ValueError(f"Tier {tier.name}: discount_percent {tier.discount_percent} is not in (0, 100].")
        if not 0 <= self.control_share < 1:
            raise ValueError(f"control_share {self.control_share} is not in [0, 1).")
        if not 1 <= self.validity_days <= 3650:
            raise ValueError(f"validity_days {self.validity_days} must be between 1 and 3650.")
        if self.min_days_between_offers < 0:
            raise ValueError(f"min_days_between_offers {self.min_days_between_offers} must not be negative.")
        if self.max_offers_per_campaign is not None and self.max_offers_per_campaign < 0:
            raise ValueError(f"max_offers_per_campaign {self.max_offers_per_campaign} must not be negative.")

    @property
    def lowest_threshold(self) -> float:
        return min(tier.min_probability for tier in self.tiers)

    def tier_for(self, probability: float) -> Tier | None:
        """Return the tier with the highest threshold below the probability."""
        eligible = [tier for tier in self.tiers if probability > tier.min_probability]
        return max(eligible, key=lambda tier: tier.min_probability) if eligible else None


@dataclass
class PriorOffers:
    """Earlier decisions (this campaign's and others') that constrain new offers."""

    already_in_campaign: set[str] = field(default_factory=set)
    holding_unexpired_offer: set[str] = field(default_factory=set)
    offered_recently: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)
    treated_in_campaign: int = 0


@dataclass
class OfferDecisions:
    """Offer rows to write and the counts of users left out, by reason."""

    offers: pd.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)


def decide_offers(
    scores: pd.DataFrame,
    policy: OfferPolicy,
    campaign_id: str,
    created_at: datetime,
    code_key: bytes,
    prior: PriorOffers,
) -> OfferDecisions:
    """Decide offers for scored users above the lowest tier threshold.

    `scores` has user_id, churn_probability, model_version, scoring_run_id and has_purchased.
    With a maximum per campaign, the highest probabilities get the remaining treated offers.
    """
    excluded: dict[str, int] = {}

    def drop(mask: pd.Series, reason: str) -> pd.DataFrame:
        excluded[reason] = int(mask.sum())
        return candidates[~mask]

    candidates = scores[scores["churn_probability"] > policy.lowest_threshold]
    candidates = candidates.sort_values(["churn_probability", "user_id"], ascending=[False, True], kind="stable")
    candidates = drop(candidates["user_id"].isin(prior.already_in_campaign), "already_in_campaign")
    candidates = drop(candidates["user_id"].isin(prior.opted_out), "opted_out")
    if policy.exclude_never_purchased:
        candidates = drop(candidates["has_purchased"] == 0, "never_purchased")
    if policy.exclude_unexpired_offers:
        candidates = drop(candidates["user_id"].isin(prior.holding_unexpired_offer), "unexpired_offer")
    if policy.min_days_between_offers:
        candidates = drop(candidates["user_id"].isin(prior.offered_recently), "offered_recently")

    is_control = pd.Series(
        [is_control_user(campaign_id, user, policy.control_share) for user in candidates["user_id"]],
        index=candidates.index, dtype=bool,
    )
    if policy.max_offers_per_campaign is not None:
        remaining = max(0, policy.max_offers_per_campaign - prior.treated_in_campaign)
        treated_rank = (~is_control).cumsum()
        over_budget = ~is_control & (treated_rank > remaining)
        candidates = drop(over_budget, "over_budget")
        is_control = is_control[candidates.index]

    tiers = candidates["churn_probability"].map(policy.tier_for)
    expires_at = created_at + timedelta(days=policy.validity_days)
    rows = pd.DataFrame({
        "offer_id": [offer_id(campaign_id, user) for user in candidates["user_id"]],
        "campaign_id": campaign_id,
        "user_id": candidates["user_id"].to_numpy(),
        "offer_group": ["control" if control else "treatment" for control in is_control],
        "tier": [tier.name for tier in tiers],
        "discount_percent": [tier.discount_percent for tier in tiers],
        "churn_probability": candidates["churn_probability"].to_numpy(),
        "model_version": candidates["model_version"].to_numpy(),
        "scoring_run_id": candidates["scoring_run_id"].to_numpy(),
        "created_at": created_at,
        "expires_at": expires_at,
    })
    rows["discount_code"] = [
        discount_code(code_key, campaign_id, user, policy.code_prefix, percent)
        for user, percent in zip(rows["user_id"], rows["discount_percent"])
    ]
    if rows["discount_code"].duplicated().any():
        raise ValueError(f"Campaign {campaign_id}: two users received the same discount code; no offers were written.")
    return OfferDecisions(rows, excluded)
