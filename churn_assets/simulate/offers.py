"""Discount offers inside the simulation: who an offer wins back, and which purchases carry a code.

An offer is activated on its first valid simulated day. Its return probability is the user's
persuadability times a factor for the user's status, scaled by the discount. A treated user
persuaded by the offer returns on a drawn day within the validity: the user makes a purchase
and becomes fully active again. Any treated user's first purchase within the validity carries
the code, so redemptions include purchases the user would have made anyway. Control users get
the same probabilities recorded as a counterfactual and nothing else.
"""

from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa

from churn_assets.simulate.events import DayEvents
from churn_assets.simulate.no_purchase import no_purchase_probability
from churn_assets.simulate.parameters import BehaviourParameters
from churn_assets.simulate.population import ACTIVE, CHURNED, DECLINING, Population
from churn_assets.simulate.random_streams import OFFERS, day_generator

NOT_SET = -1

# Columns every offer book starts from. `OfferBook` adds the outcome columns.
OFFER_COLUMNS = (
    "offer_id", "campaign_id", "user_id", "user_index", "offer_group", "discount_code", "discount_percent",
    "activation_day", "last_day",
)
OUTCOME_COLUMNS = (
    "status_at_offer", "return_probability", "no_purchase_probability", "uplift_probability",
    "persuaded", "return_day", "redeemed_day", "redeemed_second",
)


class OfferBook:
    """The offers one run handles, with their simulated outcome, and each user's open code.

    `offers` must have OFFER_COLUMNS. Rows restored from an earlier run also have OUTCOME_COLUMNS
    and an `activated` flag. The others are activated on their `activation_day`.
    """

    def __init__(self, offers: pd.DataFrame, users: int):
        offers = offers.sort_values(["activation_day", "user_index", "campaign_id"], kind="stable").reset_index(drop=True)
        self.offers = offers
        self.user_index = offers["user_index"].to_numpy(np.int64)
        self.is_treatment = (offers["offer_group"] == "treatment").to_numpy()
        self.discount_percent = offers["discount_percent"].to_numpy(np.int64)
        self.activation_day = offers["activation_day"].to_numpy(np.int64)
        self.last_day = offers["last_day"].to_numpy(np.int64)
        self.codes = pa.array(offers["discount_code"].astype(object), pa.string())

        count = len(offers)
        restored = offers["activated"].to_numpy(bool) if "activated" in offers else np.zeros(count, bool)

        def outcome(name: str, dtype, default):
            if name in offers:
                return np.where(restored, offers[name].to_numpy(), default).astype(dtype)
            return np.full(count, default, dtype)

        self.status_at_offer = outcome("status_at_offer", np.int8, NOT_SET)
        self.return_probability = outcome("return_probability", np.float64, np.nan)
        self.no_purchase_probability = outcome("no_purchase_probability", np.float64, np.nan)
        self.uplift_probability = outcome("uplift_probability", np.float64, np.nan)
        self.persuaded = outcome("persuaded", bool, False)
        self.return_day = outcome("return_day", np.int64, NOT_SET)
        self.redeemed_day = outcome("redeemed_day", np.int64, NOT_SET)
        self.redeemed_second = outcome("redeemed_second", np.int64, NOT_SET)
        self.updated_day = np.full(count, NOT_SET, np.int64)

        self.open_offer = np.full(users, NOT_SET, np.int64)
        self.returns_by_day: dict[int, list[int]] = defaultdict(list)
        self.activations_by_day: dict[int, np.ndarray] = {}
        self.changed = np.zeros(count, bool)
        self.redemptions = 0
        self.activations = 0

        for index in np.flatnonzero(restored):
            self._register(index)
        waiting = np.flatnonzero(~restored)
        days, starts = np.unique(self.activation_day[waiting], return_index=True)
        for day, group in zip(days, np.split(waiting, starts[1:])):
            self.activations_by_day[int(day)] = group

    @classmethod
    def empty(cls, users: int) -> "OfferBook":
        """Return a book without offers."""
        return cls(pd.DataFrame({column: pd.Series(dtype=object) for column in OFFER_COLUMNS}), users)

    def __len__(self) -> int:
        return len(self.offers)

    def _register(self, index: int) -> None:
        if self.is_treatment[index] and self.redeemed_day[index] == NOT_SET:
            # NOTE: a user has one open code at a time, so a newer treated offer replaces an older open one.
            self.open_offer[self.user_index[index]] = index
        if self.persuaded[index]:
            self.returns_by_day[int(self.return_day[index])].append(int(index))

    def activate(self, population: Population, seed: int, day: int, parameters: BehaviourParameters) -> None:
        """Activate the offers whose first valid day is `day`, drawing who is persuaded."""
        offers = self.activations_by_day.pop(day, None)
        if offers is None:
            return
        users = self.user_index[offers]
        status = population.status[users]
        windows = self.last_day[offers] - day + 1

        factor = np.select(
            [status == ACTIVE, status == DECLINING, status == CHURNED],
            [parameters.return_factor_active, parameters.return_factor_declining, parameters.return_factor_churned],
            0.0,
        )
        discount_factor = np.sqrt(self.discount_percent[offers] / parameters.reference_discount_percent)
        return_probability = np.clip(
            population.persuadability[users] * factor * discount_factor, 0.0, parameters.max_return_probability
        )
        no_purchase = no_purchase_probability(population, users, windows, parameters)

        rng = day_generator(seed, OFFERS, day)
        persuaded = self.is_treatment[offers] & (rng.random(len(offers)) < return_probability)
        delay = rng.geometric(1.0 / parameters.mean_days_to_return, len(offers)) - 1

        self.status_at_offer[offers] = status
        self.return_probability[offers] = return_probability
        self.no_purchase_probability[offers] = no_purchase
        # A persuaded user buys for sure, and without the offer the user buys with 1 - no_purchase.
        self.uplift_probability[offers] = return_probability * no_purchase
        self.persuaded[offers] = persuaded
        self.return_day[offers] = np.where(persuaded, day + np.minimum(delay, windows - 1), NOT_SET)
        self.updated_day[offers] = day
        self.changed[offers] = True
        self.activations += len(offers)
        for index in offers:
            self._register(index)

    def returning_users(self, day: int) -> np.ndarray:
        """Return the users whom an offer wins back today."""
        offers = self.returns_by_day.pop(day, [])
        return np.unique(self.user_index[np.asarray(offers, np.int64)])

    def apply_codes(self, events: DayEvents) -> None:
        """Put the open code on each holder's first purchase of the day and lower its value."""
        if not len(events.purchase_users):
            return
        holder = self.open_offer[events.purchase_users]
        candidates = np.flatnonzero(holder != NOT_SET)
        candidates = candidates[self.last_day[holder[candidates]] >= events.day]
        if not len(candidates):
            return

        order = np.lexsort((events.purchase_seconds[candidates], events.purchase_users[candidates]))
        candidates = candidates[order]
        buyers = events.purchase_users[candidates]
        first = candidates[np.concatenate([[True], buyers[1:] != buyers[:-1]])]

        offers = holder[first]
        events.purchase_offer[first] = offers
        events.purchase_cents[first] = discount_cents(events.purchase_cents[first], self.discount_percent[offers])
        self.redeemed_day[offers] = events.day
        self.redeemed_second[offers] = events.purchase_seconds[first]
        self.updated_day[offers] = events.day
        self.changed[offers] = True
        self.open_offer[events.purchase_users[first]] = NOT_SET
        self.redemptions += len(offers)

    def take_changed(self) -> np.ndarray:
        """Return the indices of offers changed since the last call, and forget them."""
        changed = np.flatnonzero(self.changed)
        self.changed[:] = False
        return changed


def discount_cents(cents: np.ndarray, percent: np.ndarray) -> np.ndarray:
    """Return the amounts after a percent discount, rounded to whole cents."""
    return np.round(cents * (100 - percent) / 100.0).astype(np.int64)
