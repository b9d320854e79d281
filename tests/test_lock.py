"""The embedded warehouse lock between real processes."""

import subprocess
import sys
import textwrap
import time

import pytest

import chdb_lock
from churn_assets.warehouse import open_client
from churn_assets.warehouse.settings import parse_url

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import chdb_lock
    client = chdb_lock.open_locked_client(Path(sys.argv[1]), 5)
    client.query("SELECT 1")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    client.close()
    print("released", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def start_holder(database_path, hold_seconds, linger_seconds=0.0):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database_path), str(hold_seconds), str(linger_seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "holding"
    return process


def test_second_process_times_out_naming_holder(tmp_path):
    database_path = tmp_path / "chdb"
    holder = start_holder(database_path, hold_seconds=30)
    try:
        with pytest.raises(chdb_lock.WarehouseBusyError) as raised:
            chdb_lock.acquire(database_path, timeout_seconds=1)
        assert f"process {holder.pid}" in str(raised.value)
        assert "CHURN_WAREHOUSE_LOCK_TIMEOUT" in str(raised.value)
    finally:
        holder.kill()
        holder.wait()


def test_waiter_opens_after_holder_closes_clients(tmp_path):
    database_path = tmp_path / "chdb"
    # The holder keeps running after closing its client: closing alone must free the path.
    holder = start_holder(database_path, hold_seconds=2, linger_seconds=20)
    try:
        started = time.monotonic()
        with open_client(parse_url(f"chdb://{database_path}"), lock_timeout_seconds=30) as client:
            assert client.command("SELECT 1") == 1
        assert time.monotonic() - started >= 1
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_shared_by_clients_of_one_process(tmp_path):
    settings = parse_url(f"chdb://{tmp_path / 'chdb'}")
    with open_client(settings) as first, open_client(settings) as second:
        assert first.command("SELECT 1") == 1
        assert second.command("SELECT 2") == 2
        assert chdb_lock.is_held_here(settings.path)
    assert not chdb_lock.is_held_here(settings.path)


def test_killed_holder_frees_lock(tmp_path):
    database_path = tmp_path / "chdb"
    holder = start_holder(database_path, hold_seconds=60)
    holder.kill()
    holder.wait()
    with open_client(parse_url(f"chdb://{database_path}"), lock_timeout_seconds=10) as client:
        assert client.command("SELECT 1") == 1
