"""Many requests to one channel at a time, from one worker process.

A real-time channel answers each payout in its own round trip. One after the other, a batch of 250 at 50 ms a
call holds a worker for 12.5 s (20 payouts/s, whatever the engine's own speed); with 16 in flight, under a
second. `each_in_flight` calls a function for each item on up to `limit` threads at once and returns the
results in the items' order.

The threads belong to one pool per process, created on first use (after Celery's fork, never inherited from a
parent) and kept: a thread's database connection, if the adapter opens one (the simulated bank does), is
reused by the next batch instead of being opened again (with persistent connections, DATABASE_CONN_MAX_AGE;
with DATABASE_POOL, give the pool more connections than a channel's max_in_flight). Django's connections are
per thread, so such an adapter writes outside the caller's transaction; the engine calls channels only outside
transactions anyway.
"""

import contextvars
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from django.conf import settings
from django.db import close_old_connections

Item = TypeVar("Item")
Result = TypeVar("Result")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _shared_pool() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():  # a forked child has its parent's object but no threads
            _pool = ThreadPoolExecutor(max_workers=settings.CHANNEL_THREADS, thread_name_prefix="channel")
            _pool_pid = os.getpid()
        return _pool


def each_in_flight(call: Callable[[Item], Result], items: Sequence[Item], *, limit: int) -> list[Result]:
    """`call(item)` for every item, at most `limit` at once; the results in the items' order.

    `call` must not raise (the adapters' defaults turn each exception into that item's answer): an exception
    escaping it ends its lane, the other lanes take the remaining items, and it is re-raised here once no lane
    is running, so nothing is left running behind the caller. With `limit` 1 or a single item, everything runs
    on the caller's thread, as before.
    """
    if limit <= 1 or len(items) <= 1:
        return [call(item) for item in items]
    results: list = [None] * len(items)
    cursor = iter(range(len(items)))
    cursor_lock = threading.Lock()
    abandoned = threading.Event()  # the caller stopped waiting: no new request starts

    def lane() -> None:
        # Around each lane what Django does around a request: a connection this thread kept from an earlier
        # batch is dropped if it has grown too old or broken (the health check costs no round trip,
        # config/postgresql), and at the end it is kept only under persistent connections (CONN_MAX_AGE > 0;
        # with 0, the tests' setting, nothing is left open to the database).
        close_old_connections()
        try:
            while not abandoned.is_set():
                with cursor_lock:
                    index = next(cursor, None)
                if index is None:
                    return
                results[index] = call(items[index])
        finally:
            close_old_connections()

    pool = _shared_pool()
    # Each lane runs in a copy of the caller's context: log lines from a channel request carry the task's request
    # id, company and advance (config/ops/context.py) as they would on the caller's thread.
    lanes = [pool.submit(contextvars.copy_context().run, lane) for _ in range(min(limit, len(items)))]
    try:
        wait(lanes)
    except BaseException:
        # Interrupted while waiting (Celery's soft time limit, a signal): the requests already out finish, no
        # new one starts behind a caller that is gone; the batch's attempts, committed before, are the status
        # queries' to resolve, as after a crash.
        abandoned.set()
        raise
    for future in lanes:
        future.result()  # re-raises a lane's exception, now that no lane is running
    return results
