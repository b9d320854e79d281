"""Draw one day's logins, cart adds and purchases for every signed-up user at once."""

from dataclasses import dataclass

import numpy as np

from churn_assets.simulate.parameters import BehaviourParameters
from churn_assets.simulate.population import ACTIVE, DECLINING, Population
from churn_assets.simulate.random_streams import EVENTS, day_generator

LOGIN = 0
ADD_TO_CART = 1
ACTION_NAMES = ("login", "add_to_cart")
SECONDS_PER_DAY = 86_400


@dataclass
class DayEvents:
    """Events of one day as parallel arrays, with times in seconds after midnight UTC (1 to 86,399).

    `purchase_offer` is the index of the offer whose code a purchase carries in the run's offer
    book, or -1.
    """

    day: int
    action_users: np.ndarray
    action_kinds: np.ndarray
    action_seconds: np.ndarray
    purchase_users: np.ndarray
    purchase_seconds: np.ndarray
    purchase_cents: np.ndarray
    purchase_offer: np.ndarray

    @property
    def count(self) -> int:
        return len(self.action_users) + len(self.purchase_users)


def draw_day_events(
    population: Population,
    seed: int,
    day: int,
    parameters: BehaviourParameters,
    new_users: np.ndarray,
    returning_users: np.ndarray,
) -> DayEvents:
    """Draw the day's events from the state at the start of the day.

    `new_users` signed up today and get one extra login. `returning_users` were won back by an
    offer today and get one extra purchase.
    """
    rng = day_generator(seed, EVENTS, day)
    live = np.flatnonzero((population.status == ACTIVE) | (population.status == DECLINING))
    activity = population.activity(live)
    engagement = population.engagement[live]

    logins = rng.poisson(parameters.login_rate * engagement * activity)
    carts = rng.poisson(parameters.cart_rate * engagement * activity)
    purchases = rng.binomial(carts, parameters.conversion * activity)

    login_users = np.concatenate([np.repeat(live, logins), new_users]).astype(np.int64)
    login_seconds = rng.integers(1, SECONDS_PER_DAY, len(login_users))
    cart_users = np.repeat(live, carts)
    cart_seconds = rng.integers(1, SECONDS_PER_DAY, len(cart_users))

    # Each user's first `purchases` cart adds of the day become purchases a few minutes later.
    first_cart = np.repeat(np.cumsum(carts) - carts, carts)
    converted = (np.arange(len(cart_users)) - first_cart) < np.repeat(purchases, carts)
    delay = rng.exponential(parameters.mean_minutes_to_purchase * 60.0, int(converted.sum())).astype(np.int64)
    natural_seconds = np.minimum(cart_seconds[converted] + 1 + delay, SECONDS_PER_DAY - 1)
    return_seconds = rng.integers(1, SECONDS_PER_DAY, len(returning_users))

    purchase_users = np.concatenate([cart_users[converted], returning_users]).astype(np.int64)
    purchase_seconds = np.concatenate([natural_seconds, return_seconds])
    purchase_cents = _draw_cents(rng, population.spend_median[purchase_users], parameters)

    return DayEvents(
        day=day,
        action_users=np.concatenate([login_users, cart_users]),
        action_kinds=np.concatenate([
            np.full(len(login_users), LOGIN, np.int8), np.full(len(cart_users), ADD_TO_CART, np.int8),
        ]),
        action_seconds=np.concatenate([login_seconds, cart_seconds]),
        purchase_users=purchase_users,
        purchase_seconds=purchase_seconds,
        purchase_cents=purchase_cents,
        purchase_offer=np.full(len(purchase_users), -1, np.int64),
    )


def _draw_cents(rng: np.random.Generator, spend_median: np.ndarray, parameters: BehaviourParameters) -> np.ndarray:
    values = spend_median * rng.lognormal(0.0, parameters.purchase_value_sigma, len(spend_median))
    cents = np.maximum(np.round(values * 100.0), 1).astype(np.int64)
    free = rng.random(len(spend_median)) < parameters.zero_value_share
    return np.where(free, 0, cents)
