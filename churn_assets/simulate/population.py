"""Hidden traits and state of every user, as NumPy arrays indexed by user number."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churn_assets.simulate.parameters import BehaviourParameters
from churn_assets.simulate.random_streams import TRAITS, day_generator

WAITING = 0
ACTIVE = 1
DECLINING = 2
CHURNED = 3
STATUS_NAMES = {WAITING: "not_signed_up", ACTIVE: "active", DECLINING: "declining", CHURNED: "churned"}

# Users that exist before day 0 have this sign-up day.
EXISTING_BEFORE_START = -1

TRAIT_COLUMNS = (
    "signup_day", "engagement", "decline_hazard", "decay", "days_to_churn", "spend_median", "persuadability",
)
STATE_COLUMNS = ("status", "days_declining")


@dataclass
class Population:
    """Traits (fixed at creation) and state (changed day by day) of all users.

    `days_to_churn` is the first day of a decline whose activity decay**k falls below the churn
    threshold. `days_declining` is k, the number of days the current decline has lasted.
    """

    signup_day: np.ndarray
    engagement: np.ndarray
    decline_hazard: np.ndarray
    decay: np.ndarray
    days_to_churn: np.ndarray
    spend_median: np.ndarray
    persuadability: np.ndarray
    status: np.ndarray
    days_declining: np.ndarray

    @property
    def size(self) -> int:
        return len(self.status)

    def activity(self, users: np.ndarray | None = None) -> np.ndarray:
        """Return the activity level of the given users (all by default): 1, decay**k or 0."""
        users = np.arange(self.size) if users is None else users
        status = self.status[users]
        declining = self.decay[users] ** self.days_declining[users]
        return np.where(status == ACTIVE, 1.0, np.where(status == DECLINING, declining, 0.0))


def days_until_churn(decay: np.ndarray, churn_activity: float) -> np.ndarray:
    """Return the smallest k with decay**k < churn_activity, at least 2."""
    days = np.floor(np.log(churn_activity) / np.log(decay)).astype(np.int64) + 1
    return np.maximum(days, 2).astype(np.int16)


def draw_population(seed: int, users: int, parameters: BehaviourParameters) -> Population:
    """Draw the traits and day-0 state of every user from the seed."""
    rng = day_generator(seed, TRAITS)

    existing = rng.random(users) < parameters.share_signed_up_at_start
    delay = np.floor(rng.exponential(parameters.mean_signup_delay_days, users)).astype(np.int32)
    signup_day = np.where(existing, EXISTING_BEFORE_START, delay).astype(np.int32)

    engagement = np.minimum(rng.lognormal(0.0, parameters.engagement_sigma, users), parameters.max_engagement)
    decline_hazard = np.minimum(
        parameters.median_decline_hazard * rng.lognormal(0.0, parameters.decline_hazard_sigma, users), 1.0
    )
    decay = rng.uniform(parameters.min_decay, parameters.max_decay, users)
    days_to_churn = days_until_churn(decay, parameters.churn_activity)
    spend_median = parameters.median_purchase_value * rng.lognormal(0.0, parameters.user_value_sigma, users)
    persuadability = rng.beta(parameters.persuadability_alpha, parameters.persuadability_beta, users)

    # Users existing before day 0 are a mix of active and declining, so the first weeks show churn.
    starts_declining = existing & (rng.random(users) < parameters.share_declining_at_start)
    decline_progress = rng.random(users)
    status = np.where(existing, np.where(starts_declining, DECLINING, ACTIVE), WAITING).astype(np.int8)
    days_declining = np.where(
        starts_declining, 1 + np.floor(decline_progress * (days_to_churn - 1)).astype(np.int64), 0
    ).astype(np.int16)

    return Population(
        signup_day=signup_day,
        engagement=engagement,
        decline_hazard=decline_hazard,
        decay=decay,
        days_to_churn=days_to_churn,
        spend_median=spend_median,
        persuadability=persuadability,
        status=status,
        days_declining=days_declining,
    )


def user_id_strings(count: int) -> pa.Array:
    """Return the user ids u0000000, u0000001, ... as an Arrow string array."""
    return pa.array([f"u{index:07d}" for index in range(count)], pa.string())
