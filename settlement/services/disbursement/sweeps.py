"""Beat sweeps: status queries that are due, pending payouts whose dispatch was lost or delayed, advances
whose finishing step was lost."""


import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from funding.models import FINAL_PAYOUT_STATES, Advance, AdvanceStatus, Payout, PayoutStatus
from settlement.models import PayoutAttempt
from settlement.services.disbursement.common import (
    LIVE,
    no_transaction,
)
from settlement.services.disbursement.cycle import advance_try_finish, attempts_query_batch

logger = logging.getLogger(__name__)


def attempts_poll_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Query every live attempt whose next query is due. Claims them with a short lease so pollers share."""
    no_transaction()
    now = now or timezone.now()
    lease = timezone.now() + timedelta(seconds=60)
    with transaction.atomic():
        ids = list(
            PayoutAttempt.objects.select_for_update(skip_locked=True)
            .filter(status__in=LIVE, next_query_at__lte=now)
            .order_by("next_query_at")
            .values_list("pk", flat=True)[:limit]
        )
        PayoutAttempt.objects.filter(pk__in=ids, status__in=LIVE).update(next_query_at=max(lease, now))
    attempts_query_batch(attempt_ids=ids, now=now)
    return len(ids)


def advances_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Advances with a pending payout that is due (new, retry, or waiting for a channel to open)."""
    now = now or timezone.now()
    return list(
        Payout.objects.filter(
            status=PayoutStatus.PENDING,
            advance__status__in=[AdvanceStatus.RESERVED, AdvanceStatus.DISBURSING],
        )
        .exclude(dispatch_after__gt=now)
        .values_list("advance_id", flat=True)
        .distinct()
        .order_by("advance_id")
    )


def advances_finish_sweep() -> int:
    """Finish advances whose last payout became final but whose finishing step was lost (crash)."""
    ids = list(
        Advance.objects.filter(status=AdvanceStatus.DISBURSING)
        .exclude(payouts__status__in=[s for s in PayoutStatus.values if s not in FINAL_PAYOUT_STATES])
        .values_list("pk", flat=True)
    )
    for advance_id in ids:
        advance_try_finish(advance_id=advance_id)
    return len(ids)
