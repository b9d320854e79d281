from pathlib import Path

import pytest

from churn_assets.warehouse.settings import WarehouseUrlError, load_settings, parse_url


def test_embedded_url_absolute_path():
    settings = parse_url("chdb:///data/warehouse")
    assert settings.is_embedded
    assert settings.path == Path("/data/warehouse")


def test_embedded_url_relative_path_resolves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = parse_url("chdb://relative/db")
    assert settings.path == tmp_path / "relative" / "db"


def test_server_url_defaults_port_by_scheme():
    assert parse_url("http://analyst@ch.internal").port == 8123
    assert parse_url("https://ch.internal").port == 8443
    assert parse_url("https://ch.internal").secure


def test_server_password_from_environment_wins():
    settings = parse_url("https://user:in-url@ch.internal:9443", password="from-env")
    assert settings.username == "user"
    assert settings.port == 9443
    assert settings.password == "from-env"


def test_describe_never_shows_password():
    settings = parse_url("https://user:secret@ch.internal")
    assert "secret" not in settings.describe()


def test_unknown_scheme_rejected():
    with pytest.raises(WarehouseUrlError, match="not supported"):
        parse_url("postgres://localhost/db")


def test_default_is_embedded_inside_project():
    settings = load_settings({})
    assert settings.is_embedded
    assert settings.path.name == "chdb"
    assert settings.path.parent.name == ".warehouse"


def test_invalid_lock_timeout_rejected():
    with pytest.raises(WarehouseUrlError, match="CHURN_WAREHOUSE_LOCK_TIMEOUT"):
        load_settings({"CHURN_WAREHOUSE_LOCK_TIMEOUT": "soon"})
