"""Shared fixtures: the real data beside the checkout, and a private embedded warehouse per test."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
CDNOW_FILE = SHARED_DIR / "datasets" / "cdnow" / "CDNOW_master.txt"


@pytest.fixture
def cdnow_file() -> Path:
    if not CDNOW_FILE.is_file():
        pytest.skip(f"CDNOW file not found at {CDNOW_FILE}")
    return CDNOW_FILE


@pytest.fixture
def warehouse_url(tmp_path, monkeypatch) -> str:
    """Point CHURN_WAREHOUSE_URL, model and Dagster folders at this test's temporary folder."""
    url = f"chdb://{tmp_path / 'warehouse' / 'chdb'}"
    monkeypatch.setenv("CHURN_WAREHOUSE_URL", url)
    monkeypatch.setenv("CHURN_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CHURN_OFFER_CODE_KEY", "test-key")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return url


@pytest.fixture
def client(warehouse_url):
    from churn_assets.warehouse import open_client

    with open_client() as opened:
        yield opened


def subprocess_environment(**overrides) -> dict[str, str]:
    """Return the current environment with the virtual environment's scripts first on PATH."""
    import sys

    environment = dict(os.environ)
    environment["PATH"] = str(Path(sys.executable).parent) + os.pathsep + environment.get("PATH", "")
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    environment.update(overrides)
    return environment


def pytest_configure(config):
    """Parse the dbt project once, before test modules that load the dbt assets are collected."""
    from churn_assets.cli import prepare_dbt_manifest

    prepare_dbt_manifest()
