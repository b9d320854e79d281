"""Inter-process lock for an embedded ClickHouse (chdb) database path.

chdb lets only one process open a database path at a time; a second process fails with an
"EmbeddedServer" error. Every process that opens the path takes this lock first and releases it
when its last client closes. Threads of one process share the lock, because chdb allows many
clients inside the process that owns the path.
"""

import fcntl
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.2


class WarehouseBusyError(TimeoutError):
    """Raised when another process keeps the embedded warehouse past the timeout."""

    def __init__(self, path: Path, holder: str, waited_seconds: float):
        self.path = path
        self.holder = holder
        self.waited_seconds = waited_seconds
        super().__init__(
            f"Embedded warehouse {path} is in use by {holder}; waited {waited_seconds:.0f} s. "
            "Wait for that process to finish or stop it, or raise CHURN_WAREHOUSE_LOCK_TIMEOUT."
        )


@dataclass
class _HeldLock:
    file_descriptor: int
    count: int


_held_locks: dict[Path, _HeldLock] = {}
_registry_guard = threading.Lock()


def lock_file_for(database_path: Path) -> Path:
    """Return the lock file beside the database folder."""
    return database_path.with_name(database_path.name + ".lock")


def read_holder(lock_path: Path) -> str:
    """Describe the process recorded in the lock file, for error messages."""
    try:
        text = lock_path.read_text().strip()
    except OSError:
        return "another process"
    return text or "another process"


def acquire(database_path: Path, timeout_seconds: float) -> None:
    """Take the lock for `database_path`, waiting up to `timeout_seconds` for another process."""
    database_path = Path(database_path).resolve()
    with _registry_guard:
        lock_state = _held_locks.get(database_path)
        if lock_state is not None:
            lock_state.count += 1
            return

        lock_path = lock_file_for(database_path)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        file_descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(file_descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout_seconds:
                    os.close(file_descriptor)
                    raise WarehouseBusyError(database_path, read_holder(lock_path), waited) from None
                time.sleep(POLL_SECONDS)

        holder = f"process {os.getpid()} ({' '.join(sys.argv)[:200]})"
        os.ftruncate(file_descriptor, 0)
        os.pwrite(file_descriptor, holder.encode(), 0)
        _held_locks[database_path] = _HeldLock(file_descriptor, 1)


def release(database_path: Path) -> None:
    """Release one hold on the lock; the last release lets other processes in."""
    database_path = Path(database_path).resolve()
    with _registry_guard:
        lock_state = _held_locks.get(database_path)
        if lock_state is None:
            return
        lock_state.count -= 1
        if lock_state.count > 0:
            return
        del _held_locks[database_path]
        os.ftruncate(lock_state.file_descriptor, 0)
        fcntl.flock(lock_state.file_descriptor, fcntl.LOCK_UN)
        os.close(lock_state.file_descriptor)


def is_held_here(database_path: Path) -> bool:
    """Return whether this process holds the lock for `database_path`."""
    with _registry_guard:
        return Path(database_path).resolve() in _held_locks


def open_locked_client(database_path: Path, timeout_seconds: float, **client_options):
    """Open a clickhouse-connect client on the embedded engine while holding the path lock.

    The returned client's `close()` releases the lock, so callers close it as soon as they are done.
    """
    import clickhouse_connect

    database_path = Path(database_path).resolve()
    acquire(database_path, timeout_seconds)
    try:
        database_path.mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=f"chdb://{database_path}", **client_options)
    except BaseException:
        release(database_path)
        raise

    close_client = client.close
    released = False

    def close_and_release() -> None:
        nonlocal released
        try:
            close_client()
        finally:
            if not released:
                released = True
                release(database_path)

    client.close = close_and_release
    return client
