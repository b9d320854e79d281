"""A synthetic shop: users with a hidden, decaying activity level, their events, offers and the truth.

`simulate_shop` writes a new shop into the warehouse, `append_days` continues it (redeeming the
pipeline's discount offers), `simulate_to_files` writes input files instead, and
`true_churn_probabilities` returns the oracle a churn model is compared against.
"""

from churn_assets.simulate.command import add_simulate_arguments, run_simulate_command
from churn_assets.simulate.oracle import true_churn_probabilities
from churn_assets.simulate.parameters import BehaviourParameters, SimulationError
from churn_assets.simulate.runner import SimulationSummary
from churn_assets.simulate.shop import append_days, simulate_shop, simulate_to_files

__all__ = [
    "BehaviourParameters",
    "SimulationError",
    "SimulationSummary",
    "add_simulate_arguments",
    "append_days",
    "run_simulate_command",
    "simulate_shop",
    "simulate_to_files",
    "true_churn_probabilities",
]
