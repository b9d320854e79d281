"""Retry a step that failed for a passing reason, such as a busy warehouse or a server timeout, with backoff.

Any other error stops the run at once with its own message.
"""

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

import chdb_lock

MAX_RETRIES = 3
FIRST_DELAY_SECONDS = 30.0

# Text that marks a passing failure in errors that arrive as text, such as a dbt subprocess's log.
PASSING_FAILURE_MARKERS = (
    "is in use by process",  # WarehouseBusyError from the embedded warehouse's lock
    "EmbeddedServer",  # another program has the embedded warehouse open
    "TIMEOUT_EXCEEDED",
    "TOO_MANY_SIMULTANEOUS_QUERIES",
    "SOCKET_TIMEOUT",
    "NETWORK_ERROR",
    "executing HTTP request",  # clickhouse-connect could not reach the server
)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_passing_failure(error: BaseException) -> bool:
    """Return whether trying again later may succeed: a busy or unreachable warehouse, or a timeout."""
    for link in error_chain(error):
        if isinstance(link, (chdb_lock.WarehouseBusyError, OperationalError, ConnectionError, TimeoutError)):
            return True
        if isinstance(link, (DatabaseError, RuntimeError, dg.Failure)) and any(marker in str(link) for marker in PASSING_FAILURE_MARKERS):
            return True
    return False


def retry_delay_seconds(retry_number: int) -> float:
    """Wait 30 s, then 60 s, then 120 s."""
    return FIRST_DELAY_SECONDS * 2**retry_number


@contextmanager
def retry_passing_failures(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Turn a passing failure inside the block into a Dagster retry with exponential backoff."""
    try:
        yield
    except Exception as error:
        # dagster-dbt reports a failed dbt command as a Failure whose text carries dbt's error log.
        if not getattr(error, "allow_retries", True) or not is_passing_failure(error):
            raise
        retry_number = context.retry_number
        if retry_number >= MAX_RETRIES:
            raise dg.Failure(
                f"Gave up after {MAX_RETRIES} retries. The last attempt failed with: {error}", allow_retries=False
            ) from error
        delay = retry_delay_seconds(retry_number)
        context.log.warning(f"Passing failure, retry {retry_number + 1} of {MAX_RETRIES} in {delay:.0f} s: {error}")
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=delay) from error


def retried_on_passing_failures(function):
    """Decorate an asset's function, below @dg.asset, so passing failures inside it are retried with backoff."""

    def context_of(args, kwargs) -> dg.AssetExecutionContext:
        return args[0] if args else kwargs["context"]

    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def generator_wrapper(*args, **kwargs):
            with retry_passing_failures(context_of(args, kwargs)):
                yield from function(*args, **kwargs)

        return generator_wrapper

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with retry_passing_failures(context_of(args, kwargs)):
            return function(*args, **kwargs)

    return wrapper
