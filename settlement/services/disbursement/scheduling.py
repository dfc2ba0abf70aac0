"""Scheduling disbursement of new advances: on commit of every new advance (and of every retry)."""

import logging

from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)

# By name, so that services never import the task modules; routing (CELERY_TASK_ROUTES) matches the name.
DISPATCH_TASK = "settlement.dispatch_advance"


def advance_schedule_dispatch(*, advance_id: int) -> None:
    """Enqueue the dispatch task. A lost message only delays: the beat sweep dispatches pending payouts."""
    if not settings.DISBURSEMENT_DISPATCH_ON_COMMIT:
        return
    try:
        # A few tasks per advance share its payouts (SKIP LOCKED); idle ones end at once.
        for _ in range(settings.DISBURSEMENT_DISPATCH_FANOUT):
            current_app.send_task(DISPATCH_TASK, args=[advance_id], retry=False)
    except Exception:  # noqa: BLE001 - the advance is committed; the sweep will pick it up
        logger.exception("could not enqueue dispatch of advance %s; the sweep will retry", advance_id)
