"""Scheduling disbursement: on commit of every new advance (one task per batch of its payouts) and of every
retry (one task)."""

import logging

from django.conf import settings

from config.broker import tasks_send

logger = logging.getLogger(__name__)

# By name, so that services never import the task modules; routing (CELERY_TASK_ROUTES) matches the name.
DISPATCH_BATCH_TASK = "settlement.dispatch_batch"  # one batch of an advance


def advance_schedule_dispatch(*, advance_id: int, payouts: int = 1) -> None:
    """Enqueue one batch task per DISBURSEMENT_BATCH_SIZE of the advance's `payouts` (not one per payout).
    Each claims its own batch (SKIP LOCKED), so workers share a large advance; a task that finds nothing
    left ends at once. A lost message only delays: the beat sweep dispatches pending payouts."""
    if not settings.DISBURSEMENT_DISPATCH_ON_COMMIT:
        return
    tasks = max(1, -(-payouts // settings.DISBURSEMENT_BATCH_SIZE))
    try:
        tasks_send(DISPATCH_BATCH_TASK, [[advance_id]] * tasks)  # one round trip for them all
    except Exception:  # noqa: BLE001 - the advance is committed; the sweep will pick it up
        logger.exception("could not enqueue dispatch of advance %s; the sweep will retry", advance_id)
