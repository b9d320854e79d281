"""Exact probability that a user makes no purchase over the next days, given the hidden state.

Purchases of a user with engagement e and activity a follow Poisson(cart_rate * e * a) cart adds,
each converting with probability conversion * a, so purchases are Poisson(rate * a**2) with
rate = cart_rate * conversion * e. The state is a Markov chain over "active" and "declining for
k days" (activity decay**k), absorbing in "churned". A forward pass over that chain, multiplying
by the daily no-purchase probability, gives P(no purchase in the window) in closed form. It
ignores offers and returns that happen inside the window.
"""

import numpy as np

from churn_assets.simulate.parameters import BehaviourParameters
from churn_assets.simulate.population import ACTIVE, CHURNED, DECLINING, Population

# Users per pass. A pass works on a few float64 matrices of users x max(days_to_churn), about
# 0.5 MB each at 1,024 users, small enough to stay in CPU cache between the day steps.
CHUNK_USERS = 1_024


def no_purchase_probability(
    population: Population,
    users: np.ndarray,
    window_days: np.ndarray | int,
    parameters: BehaviourParameters,
) -> np.ndarray:
    """Return P(no purchase in the next `window_days` days) for each user, from today's state.

    The window starts with today's events. Users that are not signed up yet get 1, because the
    chain has no sign-up step. `window_days` is one length or one length per user.
    """
    users = np.asarray(users, dtype=np.int64)
    windows = np.broadcast_to(np.asarray(window_days, dtype=np.int64), users.shape)
    result = np.empty(len(users), dtype=np.float64)
    # Sorting by decline length keeps the matrix of each chunk narrow.
    order = np.argsort(population.days_to_churn[users], kind="stable")
    for start in range(0, len(users), CHUNK_USERS):
        chunk = order[start:start + CHUNK_USERS]
        result[chunk] = _forward_pass(population, users[chunk], windows[chunk], parameters)
    return result


def _forward_pass(population: Population, users: np.ndarray, windows: np.ndarray, parameters: BehaviourParameters) -> np.ndarray:
    count = len(users)
    days_to_churn = population.days_to_churn[users].astype(np.int64)
    width = int(days_to_churn.max()) if count else 1
    rows = np.arange(count)

    # Column 0 is "active" (activity 1), and column k is "declining for k days" (activity decay**k).
    activity = population.decay[users, None] ** np.arange(width)[None, :]
    rate = parameters.cart_rate * parameters.conversion * population.engagement[users]
    keep = np.exp(-rate[:, None] * activity**2)

    status = population.status[users]
    mass = np.zeros((count, width))
    mass[status == ACTIVE, 0] = 1.0
    declining = np.flatnonzero(status == DECLINING)
    mass[declining, population.days_declining[users][declining]] = 1.0
    churned = (status == CHURNED).astype(np.float64)
    # Users not signed up yet stay outside the chain and keep probability 1.
    outside = 1.0 - mass.sum(axis=1) - churned

    hazard = population.decline_hazard[users]
    recovery = parameters.recovery_probability
    reaches_churn = days_to_churn < width
    for day in range(int(windows.max(initial=0))):
        open_window = day < windows
        # Today's events: keep the probability mass with no purchase.
        mass[open_window] *= keep[open_window]
        if not open_window.any():
            break
        # End of day: the same transitions as dynamics.apply_transitions. A decline that does
        # not recover on its last day (column days_to_churn - 1) ends in churn.
        churned += mass[rows, days_to_churn - 1] * (1.0 - recovery)
        declining_mass = mass[:, 1:].sum(axis=1)
        active_mass = mass[:, 0].copy()
        mass[:, 2:] = mass[:, 1:-1] * (1.0 - recovery)
        mass[:, 1] = active_mass * hazard
        mass[:, 0] = active_mass * (1.0 - hazard) + declining_mass * recovery
        # The churned mass was shifted one column past the user's limit, so drop it there.
        limited = rows[reaches_churn]
        mass[limited, days_to_churn[limited]] = 0.0
    return mass.sum(axis=1) + churned + outside
