"""Day-to-day changes of the hidden state: sign-ups, returns after an offer, decline and churn.

Events never change the state, so replaying these steps alone reproduces the state of any day.
The oracle relies on that.
"""

import numpy as np

from churn_assets.simulate.parameters import BehaviourParameters
from churn_assets.simulate.population import ACTIVE, CHURNED, DECLINING, WAITING, Population
from churn_assets.simulate.random_streams import TRANSITIONS, day_generator


def apply_signups(population: Population, day: int) -> np.ndarray:
    """Activate the users whose sign-up day is `day` and return their indices."""
    joining = np.flatnonzero((population.signup_day == day) & (population.status == WAITING))
    population.status[joining] = ACTIVE
    population.days_declining[joining] = 0
    return joining


def apply_returns(population: Population, users: np.ndarray) -> None:
    """Restore full activity of users won back by an offer, whatever their status was."""
    signed_up = users[population.status[users] != WAITING]
    population.status[signed_up] = ACTIVE
    population.days_declining[signed_up] = 0


def apply_transitions(population: Population, seed: int, day: int, parameters: BehaviourParameters) -> None:
    """Move users between active, declining and churned at the end of `day`.

    One uniform number per user decides both transitions: an active user starts declining when
    it is below the user's hazard, and a declining user recovers when it is below the recovery
    probability. A decline that reaches `days_to_churn` days ends in churn.
    """
    draw = day_generator(seed, TRANSITIONS, day).random(population.size)
    status = population.status

    active = status == ACTIVE
    declining = status == DECLINING
    starts_decline = active & (draw < population.decline_hazard)
    recovers = declining & (draw < parameters.recovery_probability)
    continues = declining & ~recovers

    population.days_declining[continues] += 1
    churns = continues & (population.days_declining >= population.days_to_churn)

    status[starts_decline] = DECLINING
    population.days_declining[starts_decline] = 1
    status[recovers] = ACTIVE
    population.days_declining[recovers] = 0
    status[churns] = CHURNED
    population.days_declining[churns] = 0
