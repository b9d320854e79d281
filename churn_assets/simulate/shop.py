"""Entry points: simulate a new shop into the warehouse or into files, and continue a simulated shop."""

from datetime import date
from pathlib import Path

from churn_assets.simulate import sim_tables
from churn_assets.simulate.file_sink import FileSink
from churn_assets.simulate.offer_store import load_offer_book
from churn_assets.simulate.offers import OfferBook
from churn_assets.simulate.parameters import (
    DEFAULT_START_DATE, MAX_DAYS, BehaviourParameters, RunParameters, SimulationError, validate_size,
)
from churn_assets.simulate.population import draw_population, user_id_strings
from churn_assets.simulate.runner import SimulationSummary, run_days
from churn_assets.simulate.warehouse_sink import WarehouseSink, last_day_with_events
from churn_assets.warehouse.schema import ensure_pipeline_tables


def simulate_shop(
    client,
    users: int,
    days: int,
    seed: int,
    start_date: date = DEFAULT_START_DATE,
    progress: bool = True,
    behaviour: BehaviourParameters | None = None,
) -> SimulationSummary:
    """Simulate a new shop for `days` days and insert its events into raw.purchases and raw.user_actions.

    Raises SimulationError when the warehouse already contains a simulated shop, because the user
    ids of two shops would collide.
    """
    validate_size(users, days, seed)
    ensure_pipeline_tables(client)
    sim_tables.ensure_simulation_tables(client)
    existing = sim_tables.read_run(client)
    if existing is not None:
        raise SimulationError(
            f"The warehouse already contains a simulated shop (seed {existing.seed}, {existing.users} users, "
            f"{existing.days_simulated} days from {existing.start_date}); continue it with append_days "
            "(churn simulate --append-days D) or simulate into a fresh warehouse."
        )

    run = RunParameters(seed=seed, users=users, start_date=start_date, behaviour=behaviour or BehaviourParameters())
    return _run_in_warehouse(client, run, draw_population(seed, users, run.behaviour), days, progress)


def append_days(client, days: int, progress: bool = True) -> SimulationSummary:
    """Continue the simulated shop of the warehouse by `days` days from its last checkpoint.

    Treated users holding an unexpired code from analytics.discount_offers may redeem it, and
    the outcome of every offer goes to sim.offer_truth. The result equals a longer first run
    with the same seed when the offers table is the same.
    """
    ensure_pipeline_tables(client)
    sim_tables.ensure_simulation_tables(client)
    run = sim_tables.read_run(client)
    if run is None:
        raise SimulationError(
            "No simulated shop found in the warehouse to continue; start one with simulate_shop "
            "(churn simulate --users N --days D --seed S)."
        )
    if days < 1 or run.days_simulated + days > MAX_DAYS:
        raise SimulationError(
            f"--append-days must be at least 1 and keep the shop within {MAX_DAYS} days; "
            f"it has {run.days_simulated} days, got {days}."
        )
    population = sim_tables.load_population(client, run)
    return _run_in_warehouse(client, run, population, days, progress)


def _run_in_warehouse(client, run: RunParameters, population, days: int, progress: bool) -> SimulationSummary:
    first_day = run.days_simulated
    book = load_offer_book(client, run, first_day, first_day + days - 1)
    user_ids = user_id_strings(run.users)
    sink = WarehouseSink(client, run.seed, user_ids, last_day_with_events(client, run.seed, first_day))
    return run_days(run, population, book, user_ids, days, sink, progress)


def simulate_to_files(
    folder: Path | str,
    users: int,
    days: int,
    seed: int,
    file_format: str = "parquet",
    start_date: date = DEFAULT_START_DATE,
    progress: bool = True,
    behaviour: BehaviourParameters | None = None,
) -> SimulationSummary:
    """Simulate a new shop and write folder/purchases.<ext> and folder/user_actions.<ext>.

    The files have the input columns of `churn ingest` and the same events as simulate_shop with
    the same arguments, but no offers (there is no offers table) and no state to continue from.
    Raises SimulationError when either file already exists.
    """
    validate_size(users, days, seed)
    run = RunParameters(seed=seed, users=users, start_date=start_date, behaviour=behaviour or BehaviourParameters())
    no_offers = OfferBook.empty(users)
    sink = FileSink(Path(folder), file_format)
    try:
        return run_days(run, draw_population(seed, users, run.behaviour), no_offers, user_id_strings(users), days, sink, progress)
    finally:
        sink.close()
