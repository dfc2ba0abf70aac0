"""Celery tasks: thin wrappers over the disbursement services. All are idempotent and safe under acks_late:
a redelivered dispatch only claims payouts still pending, and never re-sends an attempt it finds."""

from datetime import date

from celery import shared_task

from config.broker import tasks_send
from settlement.services import disbursement, reconciliation


@shared_task(name="settlement.dispatch_advance", acks_late=True)
def dispatch_advance(advance_id: int) -> int:
    return disbursement.advance_dispatch(advance_id=advance_id)


@shared_task(name="settlement.dispatch_batch", acks_late=True)
def dispatch_batch(advance_id: int) -> int:
    """One batch of an advance's payouts (enqueued on commit, one per batch)."""
    return disbursement.advance_dispatch_batch(advance_id=advance_id)


@shared_task(name="settlement.dispatch_due", acks_late=True)
def dispatch_due(advance_id: int, currency: str) -> int:
    """One batch of the currency's due payouts, the advance's own first (the dispatch gate's task)."""
    return disbursement.advance_dispatch_due(advance_id=advance_id, currency=currency)


@shared_task(name="settlement.dispatch_pending", acks_late=True)
def dispatch_pending() -> int:
    """Beat: enqueue dispatch for advances with due pending payouts (lost messages, waits, retries), all in one
    publish batch (one round trip with Redis, however many advances an outage left behind). A failed publish
    fails this run; the next one, 30 s later, finds the same advances."""
    advance_ids = disbursement.advances_dispatch_due()
    tasks_send(dispatch_advance.name, [[advance_id] for advance_id in advance_ids])
    return len(advance_ids)


@shared_task(name="settlement.poll_attempts", acks_late=True)
def poll_attempts() -> int:
    """Beat: status queries on the back-off schedule; also finishes advances whose finishing was lost."""
    polled = disbursement.attempts_poll_due()
    disbursement.advances_finish_sweep()
    return polled


@shared_task(name="settlement.reconcile_statements", acks_late=True)
def reconcile_statements(statement_date: str | None = None) -> int:
    """Beat (daily): import each channel's statement for the day (default: yesterday) and reconcile it."""
    day = date.fromisoformat(statement_date) if statement_date else None
    return reconciliation.statements_import_all(statement_date=day)
