"""The dbt profile follows CHURN_WAREHOUSE_URL, and the dbt arguments Dagster passes."""

import json
import os

import pytest
import yaml
from dbt.adapters.factory import load_plugin
from dbt.config.profile import Profile
from dbt.config.renderer import ProfileRenderer
from dbt_common.context import set_invocation_context

from churn_assets.defs.dbt.assets import dbt_build_args
from churn_assets.defs.dbt.project import DBT_PROJECT_DIR


def render_profile(monkeypatch, **environment):
    """Render profiles.yml the way dbt does, under the given environment."""
    for name in ("CHURN_WAREHOUSE_URL", "CHURN_WAREHOUSE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    set_invocation_context(dict(os.environ))
    load_plugin("chdb")
    load_plugin("clickhouse")
    profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    return Profile.from_raw_profiles(profiles, "churn", ProfileRenderer({}))


def test_embedded_target_by_default(monkeypatch):
    profile = render_profile(monkeypatch)
    assert profile.target_name == "embedded"
    assert profile.credentials.type == "chdb"
    assert profile.credentials.path.endswith(".warehouse/chdb")


def test_server_target_from_https_url(monkeypatch):
    profile = render_profile(
        monkeypatch, CHURN_WAREHOUSE_URL="https://analyst@ch.example.test:9443", CHURN_WAREHOUSE_PASSWORD="s3cret"
    )
    credentials = profile.credentials
    assert profile.target_name == "server"
    assert credentials.type == "clickhouse"
    assert credentials.host == "ch.example.test"
    assert credentials.port == 9443
    assert credentials.user == "analyst"
    assert credentials.password == "s3cret"
    assert credentials.secure is True


def test_server_target_default_http_port(monkeypatch):
    credentials = render_profile(monkeypatch, CHURN_WAREHOUSE_URL="http://ch.example.test").credentials
    assert credentials.port == 8123
    assert credentials.user == "default"
    assert credentials.secure is False


def test_build_args_pass_feature_date_as_json():
    args = dbt_build_args("2024-05-01")
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"feature_date": "2024-05-01"}
    assert dbt_build_args(None) == ["build"]


@pytest.mark.parametrize(
    "variables, message",
    [
        ('{feature_date: "2024-13-45"}', "is not a calendar date"),
        ('{feature_date: "2024-02-30"}', "is not a calendar date"),
        ('{feature_date: "2200-01-01"}', "is outside 1970-01-02 to 2149-06-06"),
        ('{training_snapshot_count: 0}', "training_snapshot_count must be at least 1"),
    ],
)
def test_invalid_dbt_vars_fail_compile(variables, message, warehouse_url):
    import subprocess

    from conftest import REPO_ROOT, subprocess_environment

    completed = subprocess.run(
        ["dbt", "compile", "--select", "user_features churn_training_set", "--vars", variables],
        cwd=REPO_ROOT / "dbt_project", env=subprocess_environment(CHURN_WAREHOUSE_URL=warehouse_url),
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert message in completed.stdout
