"""Concurrency tests that force one interleaving with real connections: a row held locked from a third
connection while two operations queue behind it in a chosen order."""

import threading
import time
from collections.abc import Callable

from django.db import connection, transaction
from django.db.models import QuerySet


def waiting_on_locks() -> int:
    """Backends of the test database waiting for a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def wait_until_waiting(count: int) -> None:
    deadline = time.monotonic() + 20
    while waiting_on_locks() < count:
        assert time.monotonic() < deadline, "the threads never reached their lock waits"
        time.sleep(0.02)


def outcome_of(fn: Callable[[], object], *, start: threading.Barrier | None = None) -> object:
    """`fn()` on this thread's own connection, closed afterwards: its result, or what it raised (returned for
    the test to assert on). `start`: wait there first, so that racing threads begin together."""
    try:
        if start is not None:
            start.wait(timeout=30)
        return fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test, which asserts on it
        return exc
    finally:
        connection.close()


def race(*fns: Callable[[], object], timeout: float = 120) -> list:
    """Run the functions at once, each on its own thread and connection; each one's result or exception."""
    results: list = [None] * len(fns)
    start = threading.Barrier(len(fns))

    def run(i: int, fn: Callable[[], object]) -> None:
        results[i] = outcome_of(fn, start=start)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def queued_behind_a_held_row(row: QuerySet, first: Callable[[], object], second: Callable[[], object]) -> list:
    """Lock `row` (a queryset of one row) from another connection, run `first` in a thread until it waits for a
    lock, then `second` likewise, then let the row go: the worst order for the two. Returns what they raised."""
    errors: list[BaseException] = []
    locked, let_go = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                row.select_for_update().get()
                locked.set()
                let_go.wait(timeout=30)
        finally:
            connection.close()

    def run(fn: Callable[[], object]) -> None:
        outcome = outcome_of(fn)
        if isinstance(outcome, BaseException):
            errors.append(outcome)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(timeout=10)
    threads = [holder]
    for waiting, fn in enumerate((first, second), start=1):
        thread = threading.Thread(target=run, args=(fn,))
        thread.start()
        threads.append(thread)
        wait_until_waiting(waiting)
    let_go.set()
    for thread in threads:
        thread.join(timeout=60)
    return errors
