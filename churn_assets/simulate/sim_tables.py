"""The `sim` database: run parameters, hidden user state checkpoints and the offer truth."""

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from churn_assets.simulate.parameters import BehaviourParameters, RunParameters, SimulationError
from churn_assets.simulate.population import STATE_COLUMNS, TRAIT_COLUMNS, Population

SIM_DATABASE = "sim"

SIM_TABLES = {
    "run_parameters": """
        CREATE TABLE IF NOT EXISTS sim.run_parameters (
            seed UInt64,
            users UInt64,
            start_date Date,
            days_simulated UInt32,
            last_simulated_date Date,
            behaviour_json String,
            saved_at DateTime64(3, 'UTC')
        )
        ENGINE = MergeTree
        ORDER BY (days_simulated, saved_at)
    """,
    # One partition per checkpoint: the state at the start of day `checkpoint_day`. Only the
    # partition named by the latest run_parameters row is read, and the others are dropped.
    "user_state": """
        CREATE TABLE IF NOT EXISTS sim.user_state (
            checkpoint_day UInt32,
            user_index UInt32,
            user_id String,
            signup_day Int32,
            engagement Float64,
            decline_hazard Float64,
            decay Float64,
            days_to_churn UInt16,
            spend_median Float64,
            persuadability Float64,
            status UInt8,
            days_declining UInt16,
            activity Float64
        )
        ENGINE = MergeTree
        PARTITION BY checkpoint_day
        ORDER BY user_index
    """,
    # For control rows the probabilities are what the offer would have done, and persuaded is 0.
    "offer_truth": """
        CREATE TABLE IF NOT EXISTS sim.offer_truth (
            offer_id String,
            campaign_id String,
            user_id String,
            offer_group LowCardinality(String),
            discount_code String,
            discount_percent UInt8,
            activation_date Date,
            last_valid_date Date,
            status_at_offer LowCardinality(String),
            return_probability Float64,
            no_purchase_probability Float64,
            uplift_probability Float64,
            persuaded UInt8,
            return_date Nullable(Date),
            redeemed UInt8,
            redeemed_at Nullable(DateTime64(3, 'UTC')),
            updated_day UInt32
        )
        ENGINE = ReplacingMergeTree(updated_day)
        ORDER BY (campaign_id, user_id)
    """,
    "churn_oracle": """
        CREATE TABLE IF NOT EXISTS sim.churn_oracle (
            cutoff_date Date,
            window_days UInt32,
            user_id String,
            status_at_cutoff LowCardinality(String),
            activity_at_cutoff Float64,
            churn_probability Float64,
            count_purchases_in_window UInt64,
            is_churned Nullable(UInt8)
        )
        ENGINE = ReplacingMergeTree
        ORDER BY (cutoff_date, window_days, user_id)
    """,
}


def ensure_simulation_tables(client) -> None:
    """Create the sim database and its tables if they are missing."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {SIM_DATABASE}")
    for ddl in SIM_TABLES.values():
        client.command(ddl)


def read_run(client) -> RunParameters | None:
    """Return the latest saved run parameters, or None when the warehouse contains no simulated shop."""
    exists = client.command("SELECT count() FROM system.tables WHERE database = 'sim' AND name = 'run_parameters'")
    if not int(exists):
        return None
    rows = client.query(
        "SELECT seed, users, start_date, days_simulated, behaviour_json FROM sim.run_parameters "
        "ORDER BY days_simulated DESC, saved_at DESC LIMIT 1"
    ).result_rows
    if not rows:
        return None
    seed, users, start_date, days_simulated, behaviour_json = rows[0]
    return RunParameters(
        seed=int(seed),
        users=int(users),
        start_date=start_date,
        days_simulated=int(days_simulated),
        behaviour=BehaviourParameters(**json.loads(behaviour_json)),
    )


def save_checkpoint(client, run: RunParameters, population: Population, user_ids: pa.Array) -> None:
    """Store the state at the start of day `run.days_simulated`, then make it the current one.

    The run parameters row is written after the state, so a run stopped in between leaves the
    previous checkpoint current. Partitions of other days are dropped last.
    """
    day = run.days_simulated
    client.command(f"ALTER TABLE sim.user_state DROP PARTITION {day}")
    columns = {
        "checkpoint_day": pa.array(np.full(population.size, day, np.uint32)),
        "user_index": pa.array(np.arange(population.size, dtype=np.uint32)),
        "user_id": user_ids,
    }
    for name in TRAIT_COLUMNS + STATE_COLUMNS:
        columns[name] = pa.array(getattr(population, name))
    columns["activity"] = pa.array(population.activity())
    client.insert_arrow("sim.user_state", _cast_to_table(pa.table(columns)))

    client.insert(
        "sim.run_parameters",
        [[
            run.seed, run.users, run.start_date, day, run.date_of(day - 1), run.behaviour.to_json(),
            datetime.now(timezone.utc),
        ]],
        column_names=["seed", "users", "start_date", "days_simulated", "last_simulated_date", "behaviour_json", "saved_at"],
    )
    stale = client.query(
        "SELECT DISTINCT partition FROM system.parts "
        "WHERE database = 'sim' AND table = 'user_state' AND active AND partition != {day:String}",
        parameters={"day": str(day)},
    ).result_rows
    for (partition,) in stale:
        client.command(f"ALTER TABLE sim.user_state DROP PARTITION {int(partition)}")


def _cast_to_table(table: pa.Table) -> pa.Table:
    types = {
        "signup_day": pa.int32(), "days_to_churn": pa.uint16(), "status": pa.uint8(), "days_declining": pa.uint16(),
    }
    return table.cast(pa.schema([pa.field(name, types.get(name, table.schema.field(name).type)) for name in table.column_names]))


def load_population(client, run: RunParameters) -> Population:
    """Read the checkpoint of day `run.days_simulated` back into arrays."""
    columns = ", ".join(TRAIT_COLUMNS + STATE_COLUMNS)
    table = client.query_arrow(
        f"SELECT {columns} FROM sim.user_state WHERE checkpoint_day = {{day:UInt32}} ORDER BY user_index",
        parameters={"day": run.days_simulated},
    )
    if table.num_rows != run.users:
        raise SimulationError(
            f"The simulation state of day {run.days_simulated} has {table.num_rows} users, expected {run.users}; "
            "the sim database is damaged. Simulate the shop again into a fresh warehouse."
        )
    dtypes = {
        "signup_day": np.int32, "days_to_churn": np.int16, "status": np.int8, "days_declining": np.int16,
    }
    arrays = {
        name: table.column(name).to_numpy().astype(dtypes.get(name, np.float64))
        for name in TRAIT_COLUMNS + STATE_COLUMNS
    }
    return Population(**arrays)
