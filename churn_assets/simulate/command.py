"""The `churn simulate` command: arguments and handler, for the project's argparse CLI."""

import argparse
import sys
from datetime import date
from pathlib import Path

from churn_assets.simulate.file_sink import FILE_FORMATS
from churn_assets.simulate.parameters import DEFAULT_START_DATE, SimulationError

DEFAULT_SEED = 0
DEFAULT_FILE_FORMAT = "parquet"


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from error


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `churn simulate` to a (sub)parser."""
    parser.add_argument("--users", type=int, help="number of users of a new shop (required unless --append-days)")
    parser.add_argument("--days", type=int, help="number of days to simulate for a new shop (required unless --append-days)")
    parser.add_argument(
        "--seed", type=int,
        help=f"random seed of a new shop, a non-negative integer; the same seed gives the same shop (default: {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--start-date", type=_iso_date,
        help=f"calendar date of the first simulated day of a new shop, YYYY-MM-DD (default: {DEFAULT_START_DATE})",
    )
    parser.add_argument(
        "--to-folder", help="write purchases and user_actions files into this folder instead of the warehouse",
    )
    parser.add_argument(
        "--format", dest="file_format", choices=sorted(FILE_FORMATS),
        help=f"file format with --to-folder (default: {DEFAULT_FILE_FORMAT})",
    )
    parser.add_argument(
        "--append-days", type=int,
        help="continue the warehouse's simulated shop by this many days, redeeming its discount offers",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")


def run_simulate_command(arguments: argparse.Namespace) -> int:
    """Run `churn simulate` and return the exit status.

    The status is 0 on success, and 2 when the arguments are invalid or the warehouse cannot take
    the request (a second new shop, or no shop to continue).
    """
    from churn_assets.simulate.shop import append_days, simulate_shop, simulate_to_files
    from churn_assets.warehouse import load_settings, open_client
    from churn_assets.warehouse.schema import ensure_pipeline_tables

    progress = not arguments.no_progress
    try:
        _check_combination(arguments)
        seed = DEFAULT_SEED if arguments.seed is None else arguments.seed
        start_date = arguments.start_date or DEFAULT_START_DATE
        if arguments.to_folder:
            file_format = arguments.file_format or DEFAULT_FILE_FORMAT
            folder = Path(arguments.to_folder)
            summary = simulate_to_files(
                folder, arguments.users, arguments.days, seed, file_format, start_date, progress,
            )
            print(summary.describe())
            print(f"Files: {folder.resolve()}/{{purchases,user_actions}}.{file_format}")
            return 0

        settings = load_settings()
        print(f"Simulating into {settings.describe()}")
        with open_client(settings) as client:
            ensure_pipeline_tables(client)
            if arguments.append_days is not None:
                summary = append_days(client, arguments.append_days, progress)
            else:
                summary = simulate_shop(client, arguments.users, arguments.days, seed, start_date, progress)
    except SimulationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0


def _check_combination(arguments: argparse.Namespace) -> None:
    if arguments.file_format is not None and not arguments.to_folder:
        raise SimulationError("--format applies only to files; add --to-folder DIR.")
    if arguments.append_days is not None:
        new_shop_options = (
            ("--users", arguments.users), ("--days", arguments.days), ("--seed", arguments.seed),
            ("--start-date", arguments.start_date), ("--to-folder", arguments.to_folder),
        )
        conflicting = [option for option, value in new_shop_options if value is not None]
        if conflicting:
            raise SimulationError(
                f"--append-days continues the existing shop and cannot be combined with {', '.join(conflicting)}."
            )
        return
    missing = [option for option, value in (("--users", arguments.users), ("--days", arguments.days)) if value is None]
    if missing:
        raise SimulationError(f"missing {' and '.join(missing)}; give --users N --days D, or --append-days D.")
