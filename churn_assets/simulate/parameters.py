"""Parameters of the synthetic shop: the behaviour model and the identity of one simulated run."""

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone

MILLISECONDS_PER_DAY = 86_400_000
# Event ids carry the day as five digits, so a shop can run for at most this many days.
MAX_DAYS = 99_999
DEFAULT_START_DATE = date(2024, 1, 1)


class SimulationError(ValueError):
    """Raised when a simulation cannot start or continue with the given arguments or warehouse."""


@dataclass(frozen=True)
class BehaviourParameters:
    """Distributions of the hidden user traits and the daily event rates.

    Rates are expected events per day for a user with engagement 1 at full activity. A user's
    activity is 1 while active and decay**k on the k-th day of a decline. The user churns (no more
    events) on the day activity would fall below `churn_activity`.
    """

    # Sign-ups: a share of users exists before day 0, the others sign up after an exponential delay.
    share_signed_up_at_start: float = 0.5
    mean_signup_delay_days: float = 120.0
    # Share of the users existing before day 0 that are already declining on day 0.
    share_declining_at_start: float = 0.15

    # Engagement: lognormal with median 1, capped, scales every event rate of a user.
    engagement_sigma: float = 0.6
    max_engagement: float = 5.0
    login_rate: float = 0.6
    cart_rate: float = 0.2
    # Probability that a cart add becomes a purchase, times the user's activity.
    conversion: float = 0.35
    # Mean minutes between a cart add and the purchase it becomes.
    mean_minutes_to_purchase: float = 10.0

    # Decline: an active user starts declining with a per-user daily hazard (lognormal), and a
    # declining user recovers to full activity with `recovery_probability` per day.
    median_decline_hazard: float = 0.004
    decline_hazard_sigma: float = 0.8
    min_decay: float = 0.90
    max_decay: float = 0.97
    churn_activity: float = 0.15
    recovery_probability: float = 0.01

    # Purchase values: a lognormal median per user times lognormal noise per purchase, in dollars.
    median_purchase_value: float = 35.0
    user_value_sigma: float = 0.5
    purchase_value_sigma: float = 0.35
    zero_value_share: float = 0.003

    # Offers: the probability that an offer brings a user back is persuadability (Beta) times a
    # factor for the user's status, times sqrt(discount_percent / reference_discount_percent).
    persuadability_alpha: float = 2.0
    persuadability_beta: float = 4.0
    return_factor_active: float = 0.5
    return_factor_declining: float = 1.0
    return_factor_churned: float = 0.3
    reference_discount_percent: float = 20.0
    max_return_probability: float = 0.95
    # A persuaded user returns after a geometric number of days with this mean, within validity.
    mean_days_to_return: float = 5.0

    def __post_init__(self):
        shares = {
            "share_signed_up_at_start": self.share_signed_up_at_start,
            "share_declining_at_start": self.share_declining_at_start,
            "conversion": self.conversion,
            "recovery_probability": self.recovery_probability,
            "zero_value_share": self.zero_value_share,
            "max_return_probability": self.max_return_probability,
        }
        for name, value in shares.items():
            if not 0 <= value <= 1:
                raise SimulationError(f"Behaviour parameter {name}={value} is not a probability in [0, 1].")
        if not 0 < self.min_decay <= self.max_decay < 1:
            raise SimulationError(
                f"Invalid decay range min_decay={self.min_decay}, max_decay={self.max_decay}; "
                "use 0 < min_decay <= max_decay < 1."
            )
        if not 0 < self.churn_activity < 1:
            raise SimulationError(f"churn_activity={self.churn_activity} must lie inside (0, 1).")
        if self.mean_days_to_return < 1:
            raise SimulationError(f"mean_days_to_return={self.mean_days_to_return} must be at least 1.")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BehaviourParameters":
        return cls(**json.loads(text))


@dataclass
class RunParameters:
    """Identity and progress of one simulated shop: what `append_days` needs to continue it."""

    seed: int
    users: int
    start_date: date
    days_simulated: int = 0
    behaviour: BehaviourParameters = field(default_factory=BehaviourParameters)

    def date_of(self, day: int) -> date:
        """Return the calendar date of a day index (day 0 is `start_date`)."""
        return self.start_date + timedelta(days=day)

    def day_of(self, on: date) -> int:
        """Return the day index of a calendar date."""
        return (on - self.start_date).days

    def day_start_ms(self, day: int) -> int:
        """Return midnight UTC of a day index in milliseconds since the Unix epoch."""
        midnight = datetime.combine(self.start_date, time(0), tzinfo=timezone.utc)
        return int(midnight.timestamp()) * 1000 + day * MILLISECONDS_PER_DAY


def validate_size(users: int, days: int, seed: int) -> None:
    """Raise SimulationError unless users, days and seed can be simulated."""
    if users < 1:
        raise SimulationError(f"--users must be at least 1, got {users}.")
    if not 1 <= days <= MAX_DAYS:
        raise SimulationError(f"--days must be between 1 and {MAX_DAYS}, got {days}.")
    if seed < 0:
        raise SimulationError(f"--seed must be zero or positive, got {seed}.")
