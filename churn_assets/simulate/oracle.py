"""The oracle a churn model is compared against: each user's true churn probability at a cutoff.

The hidden state at the cutoff is rebuilt by replaying the seeded state changes (sign-ups,
recorded returns after offers, decline and churn) from day 0. Events do not affect the state,
so the replay does not draw them. The probability of no purchase in the window then comes in
closed form from `no_purchase_probability`, not from sampling.
"""

from collections import defaultdict
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from churn_assets.simulate.dynamics import apply_returns, apply_signups, apply_transitions
from churn_assets.simulate.event_tables import day_id_prefix
from churn_assets.simulate.no_purchase import no_purchase_probability
from churn_assets.simulate.parameters import RunParameters, SimulationError
from churn_assets.simulate.population import STATUS_NAMES, Population, draw_population, user_id_strings
from churn_assets.simulate.sim_tables import read_run


def replay_state(client, run: RunParameters, day: int) -> Population:
    """Return the hidden state at the start of `day` (before that day's sign-ups)."""
    returns = client.query(
        "SELECT user_id, return_date FROM sim.offer_truth FINAL WHERE persuaded = 1 AND return_date < {day:Date}",
        parameters={"day": run.date_of(day)},
    ).result_rows
    returns_by_day: dict[int, list[int]] = defaultdict(list)
    for user_id, return_date in returns:
        returns_by_day[run.day_of(return_date)].append(int(user_id[1:]))

    population = draw_population(run.seed, run.users, run.behaviour)
    for replayed_day in range(day):
        apply_signups(population, replayed_day)
        apply_returns(population, np.unique(np.asarray(returns_by_day.get(replayed_day, []), np.int64)))
        apply_transitions(population, run.seed, replayed_day, run.behaviour)
    return population


def true_churn_probabilities(client, cutoff: date, window_days: int, store: bool = False) -> pd.DataFrame:
    """Return each user's true probability of no purchase in [cutoff, cutoff + window_days) and the outcome.

    Rows cover every user signed up before the cutoff, including users without any recorded
    event, so join on user_id to compare with model scores. The probability assumes no offer
    inside the window. `is_churned` is the actual outcome from raw.purchases, and is missing
    when the window reaches past the last simulated day. With `store`, the rows also go to
    sim.churn_oracle.
    """
    run = read_run(client)
    if run is None:
        raise SimulationError("No simulated shop found in the warehouse; run churn simulate first.")
    cutoff_day = run.day_of(cutoff)
    if not 0 <= cutoff_day <= run.days_simulated:
        raise SimulationError(
            f"Cutoff {cutoff} is outside the simulated days {run.start_date} to {run.date_of(run.days_simulated)}."
        )
    if window_days < 1:
        raise SimulationError(f"window_days must be at least 1, got {window_days}.")

    population = replay_state(client, run, cutoff_day)
    users = np.flatnonzero(population.signup_day < cutoff_day)
    probability = no_purchase_probability(population, users, window_days, run.behaviour)
    user_ids = user_id_strings(run.users).take(pa.array(users)).to_pandas()

    counts = client.query(
        "SELECT user_id, uniqExact(purchase_id) FROM raw.purchases "
        "WHERE purchase_id >= {low:String} AND purchase_id < {high:String} GROUP BY user_id",
        parameters={"low": day_id_prefix(run.seed, cutoff_day), "high": day_id_prefix(run.seed, cutoff_day + window_days)},
    ).result_rows
    purchases = user_ids.map(dict(counts)).fillna(0).astype(np.uint64)
    outcome_known = cutoff_day + window_days <= run.days_simulated

    frame = pd.DataFrame({
        "cutoff_date": cutoff,
        "window_days": window_days,
        "user_id": user_ids,
        "status_at_cutoff": [STATUS_NAMES[int(code)] for code in population.status[users]],
        "activity_at_cutoff": population.activity(users),
        "churn_probability": probability,
        "count_purchases_in_window": purchases,
        "is_churned": pd.array((purchases == 0).astype(np.uint8) if outcome_known else [pd.NA] * len(users), dtype="UInt8"),
    })
    if store:
        client.insert_df("sim.churn_oracle", frame)
    return frame
