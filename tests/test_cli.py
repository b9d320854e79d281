"""The churn command reports bad input with one error line and exit status 2."""

import pytest

from churn_assets.cli import main


def test_query_prints_rows(warehouse_url, capsys):
    assert main(["query", "SELECT 1 AS answer", "--format", "tsv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["answer", "1"]


@pytest.mark.parametrize("sql", ["SELEC 1", "   "])
def test_query_bad_sql_is_an_error(warehouse_url, capsys, sql):
    assert main(["query", sql]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_bad_warehouse_url_is_an_error(monkeypatch, capsys):
    monkeypatch.setenv("CHURN_WAREHOUSE_URL", "foo://x")
    assert main(["query", "SELECT 1"]) == 2
    assert "scheme 'foo' is not supported" in capsys.readouterr().err


def test_ingest_missing_file_is_an_error(warehouse_url, tmp_path, capsys):
    assert main(["ingest", "purchases", str(tmp_path / "missing.csv")]) == 2
    assert "file not found" in capsys.readouterr().err
