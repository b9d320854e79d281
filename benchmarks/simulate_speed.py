"""Benchmark: simulate a shop into a throwaway embedded warehouse and report events per second and peak memory.

Usage: python benchmarks/simulate_speed.py --users 100000 --days 180
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="number of simulated users")
    parser.add_argument("--days", type=int, default=180, help="number of simulated days")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="churn-simulate-benchmark-"))
    os.environ["CHURN_WAREHOUSE_URL"] = f"chdb://{folder / 'warehouse'}"

    from churn_assets.simulate import simulate_shop
    from churn_assets.warehouse import open_client

    started = time.monotonic()
    with open_client() as client:
        simulate_shop(client, users=arguments.users, days=arguments.days, seed=arguments.seed, start_date=date(2024, 1, 1), progress=False)
        events = client.command("SELECT (SELECT count() FROM raw.purchases) + (SELECT count() FROM raw.user_actions)")
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"users={arguments.users} days={arguments.days} events={events} seconds={seconds:.1f} "
          f"events_per_second={events / seconds:,.0f} peak_rss_mb={peak:.0f} warehouse={folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
