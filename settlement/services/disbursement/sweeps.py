"""Beat sweeps: status queries that are due, pending payouts whose dispatch was lost or delayed, advances
whose finishing step was lost."""


import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import DecimalField, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from funding.models import (
    ADVANCE_OPEN_PAYOUT_STATES,
    FINAL_PAYOUT_STATES,
    MONEY,
    Advance,
    AdvanceStatus,
    Payout,
    PayoutStatus,
)
from settlement.models import PayoutAttempt
from settlement.services.disbursement.common import (
    LIVE,
    no_transaction,
)
from settlement.services.disbursement.cycle import advances_try_finish, attempts_query_batch

logger = logging.getLogger(__name__)
_MONEY = DecimalField(**MONEY)


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
            advance__status__in=ADVANCE_OPEN_PAYOUT_STATES,
        )
        .exclude(dispatch_after__gt=now)
        .values_list("advance_id", flat=True)
        .distinct()
        .order_by("advance_id")
    )


def advances_finish_sweep() -> int:
    """Finish advances whose last payout became final, or take in a payout that succeeded, when the finishing
    step was lost (crash): advances still disbursing with every payout final, and advances disbursing or
    overdue whose disbursed amount misses a succeeded payout (contract 1.7: due for what actually left)."""
    open_states = [s for s in PayoutStatus.values if s not in FINAL_PAYOUT_STATES]
    finished = Advance.objects.filter(status=AdvanceStatus.DISBURSING).exclude(payouts__status__in=open_states)
    succeeded = (
        Payout.objects.filter(advance=OuterRef("pk"), status=PayoutStatus.SUCCEEDED)
        .order_by()
        .values("advance")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    missed = (
        Advance.objects.filter(status__in=[AdvanceStatus.DISBURSING, AdvanceStatus.OVERDUE])
        .annotate(succeeded=Coalesce(Subquery(succeeded), Value(Decimal("0.00")), output_field=_MONEY))
        .exclude(disbursed_amount=F("succeeded"))
    )
    ids = sorted(set(finished.values_list("pk", flat=True)) | set(missed.values_list("pk", flat=True)))
    advances_try_finish(advance_ids=ids)
    return len(ids)
