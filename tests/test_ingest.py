"""Ingestion into a real embedded warehouse: counts, rejections and idempotence."""

import json
from decimal import Decimal

import pandas as pd
import pytest

from churn_assets.ingest.contract import InputFileError
from churn_assets.ingest.loader import ingest_file


def quiet(message):
    pass


def test_cdnow_loads_every_line_once(client, cdnow_file):
    first = ingest_file(client, "cdnow", cdnow_file, progress=quiet)
    second = ingest_file(client, "cdnow", cdnow_file, progress=quiet)

    assert first.rows_loaded == 69_659
    assert first.rows_rejected == 0
    assert second.rows_loaded == 0
    assert second.rows_already_present == 69_659
    count, customers, total, zero_value = client.query(
        "SELECT count(), uniqExact(user_id), sum(purchase_value), countIf(purchase_value = 0) FROM raw.purchases FINAL"
    ).result_rows[0]
    assert count == 69_659
    assert customers == 23_570
    assert total == Decimal("2500315.63")
    assert zero_value == 80


def test_cdnow_repeated_lines_kept(client, cdnow_file):
    ingest_file(client, "cdnow", cdnow_file, progress=quiet)
    # 215 distinct lines occur more than once (470 lines in all); every copy is a purchase.
    repeated_groups, repeated_lines = client.query(
        "SELECT count(), sum(copies) FROM (SELECT count() AS copies FROM raw.purchases "
        "GROUP BY user_id, purchased_at, quantity, purchase_value HAVING copies > 1)"
    ).result_rows[0]
    assert repeated_groups == 215
    assert repeated_lines == 470


def test_cdnow_keeps_leading_zeros(client, cdnow_file):
    ingest_file(client, "cdnow", cdnow_file, progress=quiet)
    assert client.command("SELECT count() FROM raw.purchases WHERE user_id = '00001'") == 1


def test_csv_bad_rows_rejected_with_reasons(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text(
        "UserID,Purchase_Date,purchase value,discount_code\n"
        "00042,2024-01-05,10.50,\n"
        ",2024-01-06,3.00,\n"
        "00043,not-a-date,3.00,\n"
        "00044,2024-01-07,abc,\n"
        "00045,2024-01-08,-1,\n"
        "00046,2024-01-09T10:00:00+02:00,7.25,SAVE20-X\n"
        "00047,2024-01-10,1.00,extra,field\n"
    )
    result = ingest_file(client, "purchases", csv_file, progress=quiet)

    assert result.rows_loaded == 2
    assert result.rows_rejected == 5
    rejected = dict(client.query("SELECT line_number, reason FROM raw.rejected_rows FINAL").result_rows)
    assert rejected[3] == "missing user_id"
    assert rejected[4].startswith("unreadable or out-of-range purchase_date")
    assert rejected[5] == "unreadable purchase_value 'abc'"
    assert rejected[6] == "negative purchase_value '-1'"
    assert rejected[8].startswith("expected 4 fields")
    zoned = client.query("SELECT toString(purchased_at), discount_code FROM raw.purchases WHERE user_id = '00046'").result_rows
    assert zoned == [("2024-01-09 08:00:00.000", "SAVE20-X")]


def test_csv_reload_adds_nothing(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text("user_id,purchase_date,purchase_value\n1,2024-01-01,5\n1,2024-01-01,5\n2,2024-01-02,6\n,2024-01-02,1\n")
    ingest_file(client, "purchases", csv_file, progress=quiet)
    again = ingest_file(client, "purchases", csv_file, progress=quiet)
    assert again.rows_loaded == 0
    assert again.rows_rejected == 1
    assert client.command("SELECT count() FROM raw.purchases") == 3
    assert client.command("SELECT count() FROM raw.rejected_rows") == 1


def test_jsonl_actions_with_malformed_lines(client, tmp_path):
    jsonl_file = tmp_path / "actions.jsonl"
    lines = [
        json.dumps({"user_id": "u1", "action": "login", "event_time": "2024-02-01T08:00:00Z"}),
        "{not json",
        json.dumps({"user_id": "u1", "action": "Add To Cart", "event_time": "2024-02-01T08:05:00Z"}),
        json.dumps({"user_id": "u2", "action": "purchase", "event_time": "2024-02-01", "value": 12.5, "event_id": "e-9"}),
        json.dumps(["a", "list"]),
        json.dumps({"user_id": "u3", "action": "", "event_time": "2024-02-01"}),
    ]
    jsonl_file.write_text("\n".join(lines) + "\n")
    result = ingest_file(client, "actions", jsonl_file, progress=quiet)

    assert result.rows_loaded == 3
    assert result.rows_rejected == 3
    reasons = dict(client.query("SELECT line_number, reason FROM raw.rejected_rows").result_rows)
    assert reasons[2].startswith("invalid JSON: Expecting property name")
    assert reasons[5] == "invalid JSON: a line must hold one object"
    assert reasons[6] == "missing action"
    assert client.command("SELECT count() FROM raw.user_actions WHERE event_id = 'e-9'") == 1


def test_parquet_purchases(client, tmp_path):
    parquet_file = tmp_path / "purchases.parquet"
    pd.DataFrame({
        "user_id": ["007", "008"],
        "purchase_date": ["2024-03-01", "2024-03-02"],
        "purchase_value": [1.5, 2.25],
    }).to_parquet(parquet_file)
    result = ingest_file(client, "purchases", parquet_file, progress=quiet)
    assert result.rows_loaded == 2
    assert client.query("SELECT sum(purchase_value) FROM raw.purchases").result_rows[0][0] == Decimal("3.75")


def test_missing_required_column_fails_whole_file(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text("user_id,purchase_value\n1,5\n")
    with pytest.raises(InputFileError, match="missing required column.*purchase_date"):
        ingest_file(client, "purchases", csv_file, progress=quiet)
    assert client.command("SELECT count() FROM raw.purchases") == 0


def test_unreadable_parquet_fails_clearly(client, tmp_path):
    broken = tmp_path / "purchases.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        ingest_file(client, "purchases", broken, progress=quiet)


def test_failed_ingest_leaves_no_staging_table(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text("user_id,purchase_value\n1,5\n")
    with pytest.raises(InputFileError):
        ingest_file(client, "purchases", csv_file, progress=quiet)
    leftovers = client.command("SELECT count() FROM system.tables WHERE database = 'raw' AND name LIKE '\\_ingest\\_%'")
    assert leftovers == 0


def test_csv_blank_lines_and_multiline_field(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text(
        'user_id,purchase_date,purchase_value\n'
        '1,2024-01-01,5\n'
        '\n'
        '2,2024-01-02,-3\n'
        '"multi\nline",not-a-date,10\n'
        '3,2024-01-03,7\n'
    )
    result = ingest_file(client, "purchases", csv_file, progress=quiet)
    assert result.rows_loaded == 2
    rejected = dict(client.query("SELECT line_number, reason FROM raw.rejected_rows").result_rows)
    assert rejected[4] == "negative purchase_value '-3'"


def test_duplicate_given_ids_rejected(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text("purchase_id,user_id,purchase_date,purchase_value\nP1,u1,2024-01-01,5\nP1,u2,2024-01-02,6\n")
    result = ingest_file(client, "purchases", csv_file, progress=quiet)
    assert result.rows_loaded == 1
    assert result.rows_rejected == 1
    assert client.query("SELECT reason FROM raw.rejected_rows").result_rows[0][0].startswith("duplicate purchase_id 'P1'")


def test_duplicate_header_fails_clearly(client, tmp_path):
    csv_file = tmp_path / "purchases.csv"
    csv_file.write_text("user_id,user_id,purchase_date,purchase_value\n1,1,2024-01-01,5\n")
    with pytest.raises(InputFileError, match="more than once: user_id"):
        ingest_file(client, "purchases", csv_file, progress=quiet)


def test_whole_file_failure_leaves_no_rejections(client, tmp_path):
    jsonl_file = tmp_path / "actions.jsonl"
    jsonl_file.write_bytes(b'{"user_id": "u1", "action": "login"}\n{broken\n\xff\xfe\n')
    with pytest.raises(InputFileError):
        ingest_file(client, "actions", jsonl_file, progress=quiet)
    assert client.command("SELECT count() FROM raw.rejected_rows") == 0
