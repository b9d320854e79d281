"""The `churn` command: ingest files, query the warehouse, and run the demo pipeline."""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from churn_assets.warehouse.settings import PROJECT_ROOT, URL_VARIABLE, load_settings

DAGSTER_HOME_VARIABLE = "DAGSTER_HOME"
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
SUMMARY_TABLES = [
    "raw.purchases", "raw.user_actions", "raw.rejected_rows", "analytics.user_features", "analytics.churn_training_set",
    "analytics.churn_scores", "analytics.discount_offers", "analytics.offer_redemption",
]


def command_ingest(arguments) -> int:
    from churn_assets.ingest.contract import InputFileError
    from churn_assets.ingest.loader import ingest_file
    from churn_assets.warehouse import open_client

    settings = load_settings()
    print(f"Loading {arguments.file} into {settings.describe()}")
    try:
        with open_client(settings) as client:
            result = ingest_file(client, arguments.kind, Path(arguments.file), arguments.format)
    except InputFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.summary())
    if result.rows_rejected:
        print(f"Rejected rows are in raw.rejected_rows (ingest_id {result.ingest_id}).")
    return 0


def command_query(arguments) -> int:
    from tabulate import tabulate

    from churn_assets.warehouse import open_client

    if not arguments.sql.strip():
        print("error: the SQL statement is empty.", file=sys.stderr)
        return 2
    with open_client() as client:
        result = client.query(arguments.sql)
    if arguments.format == "json":
        for row in result.result_rows:
            print(json.dumps(dict(zip(result.column_names, row)), default=str))
    elif arguments.format == "tsv":
        print("\t".join(result.column_names))
        for row in result.result_rows:
            print("\t".join("" if value is None else str(value) for value in row))
    else:
        print(tabulate(result.result_rows, headers=result.column_names, tablefmt="github"))
    return 0


def command_simulate(arguments) -> int:
    from churn_assets.simulate.command import run_simulate_command

    return run_simulate_command(arguments)


def command_prepare(arguments) -> int:
    prepare_dbt_manifest()
    return 0


def prepare_dbt_manifest() -> None:
    """Parse the dbt project so Dagster can load the dbt assets (no warehouse connection)."""
    from churn_assets.defs.dbt.project import dbt_project

    dbt_project.preparer.prepare(dbt_project)


def run_pipeline_job() -> bool:
    """Run the churn_pipeline job in this process, recorded in DAGSTER_HOME so the UI shows it."""
    import dagster as dg

    from churn_assets.definitions import defs

    os.environ.setdefault(DAGSTER_HOME_VARIABLE, str(DEFAULT_DAGSTER_HOME))
    dagster_home = Path(os.environ[DAGSTER_HOME_VARIABLE])
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_settings = dagster_home / "dagster.yaml"
    if not instance_settings.exists():
        instance_settings.write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("churn_pipeline").execute_in_process(instance=instance, raise_on_error=False)
    return result.success


def print_summary() -> None:
    from tabulate import tabulate

    from churn_assets.warehouse import open_client

    with open_client() as client:
        counts = [[table, client.command(f"SELECT count() FROM {table}")] for table in SUMMARY_TABLES]
        offer_actions = client.command("SELECT count() FROM raw.user_actions WHERE action = 'offer_sent'")
        model = client.query(
            "SELECT model_version, roc_auc, baseline_roc_auc, training_rows, evaluation_rows, evaluation_cutoff "
            "FROM analytics.model_registry FINAL WHERE status = 'champion' ORDER BY status_changed_at DESC LIMIT 1"
        ).result_rows
        offers = client.query(
            "SELECT campaign_id, offer_group, count(), uniqExact(discount_code), round(min(churn_probability), 4) "
            "FROM analytics.discount_offers FINAL GROUP BY campaign_id, offer_group ORDER BY campaign_id, offer_group"
        ).result_rows

    print("\nRows per table")
    print(tabulate(counts, headers=["table", "rows"], tablefmt="github"))
    print(f"({offer_actions} of the raw.user_actions rows are offer_sent actions the offers asset wrote.)")
    if model:
        version, auc, baseline, train_rows, evaluation_rows, cutoff = model[0]
        print(f"\nChampion model {version}: held-out ROC AUC {auc:.4f} vs recency rule {baseline:.4f} "
              f"({train_rows} training rows, {evaluation_rows} evaluation rows, cutoff {cutoff})")
    print("\nOffers")
    print(tabulate(offers, headers=["campaign", "group", "decisions", "distinct codes", "lowest probability"], tablefmt="github"))


def remove_embedded_warehouse(database_path: Path) -> None:
    """Delete an embedded warehouse folder, but only while holding its lock, so no process is using it."""
    import chdb_lock

    if not database_path.exists():
        return
    print(f"Removing the previous warehouse at {database_path}")
    chdb_lock.acquire(database_path, load_settings().lock_timeout_seconds)
    try:
        shutil.rmtree(database_path)
    finally:
        chdb_lock.release(database_path)


def command_demo(arguments) -> int:
    from churn_assets.data.cdnow import cdnow_master_path
    from churn_assets.ingest.loader import ingest_file
    from churn_assets.warehouse import open_client

    started = time.monotonic()
    database_path = Path(arguments.warehouse).resolve()
    remove_embedded_warehouse(database_path)
    os.environ[URL_VARIABLE] = f"chdb://{database_path}"
    cdnow_file = Path(arguments.cdnow) if arguments.cdnow else cdnow_master_path()

    print(f"1/3 Loading CDNOW from {cdnow_file} into chdb://{database_path}")
    with open_client() as client:
        print(ingest_file(client, "cdnow", cdnow_file, progress=lambda message: None).summary())

    print("2/3 Parsing the dbt project")
    prepare_dbt_manifest()

    print("3/3 Materializing every asset (dbt marts, model, deployment, scores, offers, redemption mart)")
    if not run_pipeline_job():
        print("error: the churn_pipeline job failed; see the log above or the run in the Dagster UI.", file=sys.stderr)
        return 1

    print_summary()
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s. Warehouse: chdb://{database_path}")
    return 0


CDNOW_EVALUATION_VARS = {
    "evaluation_cutoff_date": "1997-09-30",
    "label_window_days": 273,
    "training_label_window_days": 91,
    "training_snapshot_count": 2,
}


def command_evaluate_cdnow(arguments) -> int:
    """Compare the Keras model with the baselines on CDNOW: features at 1997-09-30, label to 1998-06-30."""
    import subprocess

    from tabulate import tabulate

    from churn_assets.data.cdnow import cdnow_master_path
    from churn_assets.defs.dbt.project import DBT_PROJECT_DIR
    from churn_assets.ingest.loader import ingest_file
    from churn_assets.training.features import read_training_set
    from churn_assets.training.model import Hyperparameters
    from churn_assets.training.train import train_and_evaluate
    from churn_assets.warehouse import open_client

    database_path = Path(arguments.warehouse).resolve()
    remove_embedded_warehouse(database_path)
    os.environ[URL_VARIABLE] = f"chdb://{database_path}"
    cdnow_file = Path(arguments.cdnow) if arguments.cdnow else cdnow_master_path()
    with open_client() as client:
        print(ingest_file(client, "cdnow", cdnow_file, progress=lambda message: None).summary())

    build = subprocess.run(
        ["dbt", "build", "--vars", json.dumps(CDNOW_EVALUATION_VARS), "--quiet"],
        cwd=DBT_PROJECT_DIR,
    )
    if build.returncode != 0:
        print("error: dbt build failed; see its output above.", file=sys.stderr)
        return 1

    with open_client() as client:
        table = read_training_set(client)
    outcome = train_and_evaluate(table, Hyperparameters(), log=lambda message: None)
    names = ["roc_auc", "pr_auc", "brier_score", "top_decile_lift", "top_decile_capture_rate"]
    rows = [[scorer] + [round(metrics[name], 4) if name in metrics else "" for name in names] for scorer, metrics in outcome.metrics.items()]
    print(f"\nHeld-out evaluation at {outcome.evaluation_cutoff} ({outcome.evaluation_rows} users; {outcome.splits_description})")
    print(tabulate(rows, headers=["scorer", *names], tablefmt="github"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="load a purchases, actions or CDNOW file into the raw tables")
    ingest.add_argument("kind", choices=["cdnow", "purchases", "actions"], help="kind of rows in the file")
    ingest.add_argument("file", help="CSV, Parquet or JSON Lines file (CDNOW: the whitespace-separated master file)")
    ingest.add_argument("--format", choices=["csv", "parquet", "jsonl"], help="file format when the name does not tell")
    ingest.set_defaults(handler=command_ingest)

    query = commands.add_parser("query", help="run one SQL statement against the configured warehouse")
    query.add_argument("sql", help="the SQL statement")
    query.add_argument("--format", choices=["table", "tsv", "json"], default="table", help="output format (default: table)")
    query.set_defaults(handler=command_query)

    simulate = commands.add_parser("simulate", help="generate a synthetic shop's events, or append days to one")
    from churn_assets.simulate.command import add_simulate_arguments

    add_simulate_arguments(simulate)
    simulate.set_defaults(handler=command_simulate)

    prepare = commands.add_parser("prepare", help="parse the dbt project so Dagster can load it")
    prepare.set_defaults(handler=command_prepare)

    demo = commands.add_parser("demo", help="load CDNOW into a fresh embedded warehouse and run every asset")
    demo.add_argument("--cdnow", help="path of CDNOW_master.txt (default: the copy in the lifetimes package)")
    demo.add_argument(
        "--warehouse", default=str(PROJECT_ROOT / ".warehouse" / "chdb"),
        help="folder of the embedded warehouse to create; an existing one is removed (default: .warehouse/chdb)",
    )
    demo.set_defaults(handler=command_demo)

    evaluate = commands.add_parser(
        "evaluate-cdnow", help="compare the Keras model, logistic regression, the recency rule and BG/NBD on CDNOW"
    )
    evaluate.add_argument("--cdnow", help="path of CDNOW_master.txt (default: the copy in the lifetimes package)")
    evaluate.add_argument(
        "--warehouse", default=str(PROJECT_ROOT / ".warehouse" / "evaluation"),
        help="folder of the embedded warehouse to create for the comparison; an existing one is removed",
    )
    evaluate.set_defaults(handler=command_evaluate_cdnow)
    return parser


def main(argv: list[str] | None = None) -> int:
    import chdb_lock
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from churn_assets.data.cdnow import DatasetError
    from churn_assets.warehouse.settings import WarehouseUrlError

    # TensorFlow's C++ start-up messages are noise for someone running the pipeline.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (WarehouseUrlError, chdb_lock.WarehouseBusyError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ClickHouseError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: the warehouse rejected the request: {first_line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
