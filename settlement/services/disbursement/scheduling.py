"""Scheduling disbursement: on commit of every new advance and of every retry.

A large advance (more payouts than a batch) enqueues one task per batch of its payouts, so that workers share
it. A small one goes through the currency's dispatch gate when the shared cache is Redis: the first advance
after the gate opened publishes a coalesced task (`settlement.dispatch_due`) and closes the gate; the advances
committed while that task waits in the queue publish nothing, because its batch takes their payouts too (its
advance's own first, then every due payout of the currency, FIFO). The task opens the gate again before it
claims, and a batch that came back full schedules the next one. Under load that is one task per batch of
payouts instead of one per advance, most of which found their payouts already taken; the API saves the publish.

Why it cannot strand a payout: an advance commits before it tries the gate, and the task opens the gate before
its claim reads the queue. Either the advance closes the gate itself (and publishes), or a task that has not
yet started holds it closed, and that task's claim sees the committed advance. A task lost on its way leaves
the gate closed only until the key expires (DISBURSEMENT_DISPATCH_GATE_SECONDS); the beat sweep dispatches
whatever is still due after that. Without a Redis cache (local runs, tests), or with
DISBURSEMENT_DISPATCH_GATE_SECONDS=0, every advance publishes its own task.
"""

import logging

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from config.broker import tasks_send
from config.cache import redis_line

logger = logging.getLogger(__name__)

# By name, so that services never import the task modules; routing (CELERY_TASK_ROUTES) matches the name.
DISPATCH_BATCH_TASK = "settlement.dispatch_batch"  # one batch of an advance
DISPATCH_DUE_TASK = "settlement.dispatch_due"  # one batch of the currency's due payouts (the gate's task)


def advance_schedule_dispatch(*, advance_id: int, payouts: int = 1, currency: str | None = None) -> None:
    """Enqueue dispatch of the advance's `payouts`: one batch task per DISBURSEMENT_BATCH_SIZE of them, or, for
    an advance of at most one batch with its `currency` given, the currency's gated task (nothing at all when
    one is already queued). Each task claims its own batch (SKIP LOCKED); one that finds nothing left ends at
    once. A lost message only delays: the beat sweep dispatches pending payouts."""
    if not settings.DISBURSEMENT_DISPATCH_ON_COMMIT:
        return
    size = settings.DISBURSEMENT_BATCH_SIZE
    batches = (DISPATCH_BATCH_TASK, [[advance_id]] * max(1, -(-payouts // size)))  # one round trip for them all
    _enqueue(advance_id=advance_id, gated_currency=currency if payouts <= size else None, ungated=batches)


def dispatch_due_schedule(*, advance_id: int, currency: str) -> None:
    """The next coalesced task after a full batch (more may be due): through the gate when there is one, and
    published without it otherwise (never a plain batch task, which would stop at its advance's own payouts)."""
    _enqueue(advance_id=advance_id, gated_currency=currency, ungated=(DISPATCH_DUE_TASK, [[advance_id, currency]]))


def _enqueue(*, advance_id: int, gated_currency: str | None, ungated: tuple[str, list[list]]) -> None:
    """Through the currency's gate when one is given and there is a gate: the coalesced task if this call closed
    it, nothing if a task is queued. Otherwise `ungated` (task name, arguments). A failed publish reopens the
    gate it closed, so that the next advance publishes again; the beat sweep dispatches what is due meanwhile."""
    gate = _dispatch_gate_close(gated_currency) if gated_currency else None
    if gate is False:
        return  # a task of the currency is queued and not started: its claim takes these payouts too
    name, arguments = (DISPATCH_DUE_TASK, [[advance_id, gated_currency]]) if gate else ungated
    try:
        tasks_send(name, arguments)
    except Exception:  # noqa: BLE001 - the advance is committed; the sweep will pick it up
        if gate:
            dispatch_gate_open(gated_currency)
        logger.exception("could not enqueue dispatch of advance %s; the sweep will retry", advance_id)


def _gate() -> RedisCache | None:
    """The shared cache when it can hold the gate (Redis, and the gate not turned off), else None."""
    backend = caches["default"]
    if isinstance(backend, RedisCache) and settings.DISBURSEMENT_DISPATCH_GATE_SECONDS:
        return backend
    return None


def _gate_key(backend: RedisCache, currency: str) -> str:
    return backend.make_and_validate_key(f"dispatch_queued_{currency}")


def _dispatch_gate_close(currency: str) -> bool | None:
    """True: the gate was open and this caller closed it (it publishes the task). False: a task is queued.
    None: no gate (the cache is not Redis, the gate is off, or Redis failed): publish as without one."""
    backend = _gate()
    if backend is None:
        return None
    key = _gate_key(backend, currency)
    try:
        seconds = settings.DISBURSEMENT_DISPATCH_GATE_SECONDS
        (reply,) = redis_line(backend).execute(("SET", key, b"1", "NX", "EX", seconds))
        return reply is not None  # OK when set, nil when the key exists
    except RedisError as exc:
        logger.warning("dispatch gate of %s unavailable (%s): publishing without it", currency, type(exc).__name__)
        return None


def dispatch_gate_open(currency: str) -> None:
    """Open the currency's gate: the next small advance publishes a task. The gate's task calls it before it
    claims anything. A Redis that fails leaves the key to expire."""
    backend = _gate()
    if backend is None:
        return
    key = _gate_key(backend, currency)
    try:
        redis_line(backend).execute(("DEL", key))
    except RedisError as exc:
        logger.warning("dispatch gate of %s could not be opened (%s); it expires", currency, type(exc).__name__)
