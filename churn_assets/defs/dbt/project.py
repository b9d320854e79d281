"""The dbt project that builds the marts, and the dbt CLI resource that runs it."""

import os
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"


def put_dbt_on_path() -> None:
    """Let dagster-dbt find the `dbt` installed beside this Python, even when the virtual environment
    is not activated (for example `.venv/bin/churn demo`)."""
    scripts_dir = str(Path(sys.executable).parent)
    if scripts_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts_dir + os.pathsep + os.environ.get("PATH", "")


put_dbt_on_path()

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

# `dagster dev` re-parses the project on every load; other entry points need the manifest built once
# (`churn prepare`, which `churn demo` and the tests run first).
dbt_project.prepare_if_dev()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project)
