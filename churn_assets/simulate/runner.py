"""Run the day loop: state changes, events, offers, and block-wise writes with a progress bar."""

import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from churn_assets.simulate.dynamics import apply_returns, apply_signups, apply_transitions
from churn_assets.simulate.event_tables import TableContext, action_table, purchase_table
from churn_assets.simulate.events import DayEvents, draw_day_events
from churn_assets.simulate.offer_store import offer_truth_table
from churn_assets.simulate.offers import OfferBook
from churn_assets.simulate.parameters import RunParameters
from churn_assets.simulate.population import ACTIVE, CHURNED, DECLINING, WAITING, Population

# Events buffered before a block is written. A block takes about 150 bytes per event in Arrow,
# and the insert keeps a serialised copy of it in memory as well.
BLOCK_EVENTS = 250_000
# Days between checkpoints of the hidden state (and at the end of every run).
CHECKPOINT_DAYS = 30


@dataclass
class SimulationSummary:
    """Counts of one simulation run, and the hidden status of the users at its end."""

    seed: int
    users: int
    first_date: date
    last_date: date
    days: int
    purchases: int
    actions: int
    offers_activated: int
    code_redemptions: int
    users_not_signed_up: int
    users_active: int
    users_declining: int
    users_churned: int
    seconds: float

    @property
    def events(self) -> int:
        return self.purchases + self.actions

    def describe(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return (
            f"Simulated {self.days} days ({self.first_date} to {self.last_date}) of {self.users} users, seed {self.seed}: "
            f"{self.purchases} purchases and {self.actions} actions in {self.seconds:.1f} s ({rate:,.0f} events/s); "
            f"{self.offers_activated} offers activated, {self.code_redemptions} codes redeemed. "
            f"Hidden status at the end: {self.users_active} active, {self.users_declining} declining, "
            f"{self.users_churned} churned, {self.users_not_signed_up} not signed up yet."
        )


def simulate_day(run: RunParameters, population: Population, book: OfferBook, day: int) -> DayEvents:
    """Advance the shop by one day and return the day's events."""
    new_users = apply_signups(population, day)
    book.activate(population, run.seed, day, run.behaviour)
    returning = book.returning_users(day)
    apply_returns(population, returning)
    events = draw_day_events(population, run.seed, day, run.behaviour, new_users, returning)
    book.apply_codes(events)
    apply_transitions(population, run.seed, day, run.behaviour)
    return events


def run_days(
    run: RunParameters,
    population: Population,
    book: OfferBook,
    user_ids: pa.Array,
    day_count: int,
    sink,
    progress: bool = True,
) -> SimulationSummary:
    """Simulate `day_count` days after `run.days_simulated` and write them through `sink`.

    Events go out in blocks of about BLOCK_EVENTS rows. The sink checkpoints the state every
    CHECKPOINT_DAYS days and after the last day, and `run.days_simulated` then names the next day.
    """
    started = time.monotonic()
    first_day = run.days_simulated
    context = TableContext(
        seed=run.seed,
        start_ms=run.day_start_ms(0),
        user_ids=user_ids,
        offer_codes=book.codes,
        source_file=f"simulate:seed={run.seed}",
        ingest_id=uuid.uuid4().hex,
        loaded_at=datetime.now(timezone.utc),
    )
    block: dict[str, list[pa.Table]] = {"purchases": [], "user_actions": []}
    block_first_day = first_day
    block_events = 0
    purchases = actions = 0
    last_checkpoint = first_day

    with tqdm(total=day_count, unit="day", disable=not progress, desc="simulate") as bar:
        for day in range(first_day, first_day + day_count):
            events = simulate_day(run, population, book, day)
            block["purchases"].append(purchase_table(events, context))
            block["user_actions"].append(action_table(events, context))
            block_events += events.count
            purchases += len(events.purchase_users)
            actions += len(events.action_users)
            bar.update(1)
            bar.set_postfix(events=f"{purchases + actions:,}")

            is_last_day = day == first_day + day_count - 1
            if block_events < BLOCK_EVENTS and not is_last_day:
                continue
            tables = {table: pa.concat_tables(parts) for table, parts in block.items()}
            sink.write_events(tables, block_first_day, day)
            sink.write_offer_truth(offer_truth_table(book, book.take_changed(), run))
            block = {"purchases": [], "user_actions": []}
            block_first_day = day + 1
            block_events = 0
            if is_last_day or day + 1 - last_checkpoint >= CHECKPOINT_DAYS:
                run.days_simulated = day + 1
                sink.checkpoint(run, population)
                last_checkpoint = day + 1

    status_counts = np.bincount(population.status, minlength=4)
    return SimulationSummary(
        seed=run.seed,
        users=run.users,
        first_date=run.date_of(first_day),
        last_date=run.date_of(first_day + day_count - 1),
        days=day_count,
        purchases=purchases,
        actions=actions,
        offers_activated=book.activations,
        code_redemptions=book.redemptions,
        users_not_signed_up=int(status_counts[WAITING]),
        users_active=int(status_counts[ACTIVE]),
        users_declining=int(status_counts[DECLINING]),
        users_churned=int(status_counts[CHURNED]),
        seconds=time.monotonic() - started,
    )
