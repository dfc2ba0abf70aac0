"""Scheduling disbursement of new advances: called on commit of every new advance (and of every retry)."""

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def advance_schedule_dispatch(*, advance_id: int) -> None:
    """Enqueue the dispatch task. A lost message only delays: the beat sweep dispatches pending payouts."""
    if not settings.DISBURSEMENT_DISPATCH_ON_COMMIT:
        return
    from settlement.tasks import dispatch_advance

    try:
        # A few tasks per advance share its payouts (SKIP LOCKED); idle ones end at once.
        for _ in range(settings.DISBURSEMENT_DISPATCH_FANOUT):
            dispatch_advance.apply_async(args=[advance_id], retry=False)
    except Exception:  # noqa: BLE001 - the advance is committed; the sweep will pick it up
        logger.exception("could not enqueue dispatch of advance %s; the sweep will retry", advance_id)
