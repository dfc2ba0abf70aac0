"""The claim-send-apply cycle for an advance's payouts, status queries, and finishing an advance."""


import logging
from datetime import datetime

from funding.services.advances import advance_finish_disbursement
from funding.services.calendar import business_date_current
from settlement.adapters.base import ChannelError, QueryResult, adapter_for
from settlement.models import PayoutAttempt
from settlement.services.disbursement.apply import Applied, attempt_apply, attempt_submit
from settlement.services.disbursement.claim import payout_claim_next
from settlement.services.disbursement.common import (
    LIVE,
    no_transaction,
)

logger = logging.getLogger(__name__)


def advance_try_finish(*, advance_id: int) -> None:
    """After the commit of a final payout outcome: the advance finishes once all its payouts are final."""
    advance_finish_disbursement(advance_id=advance_id, business_date=business_date_current())


def advance_dispatch(*, advance_id: int, now: datetime | None = None, limit: int | None = None) -> int:
    """Send every due pending payout of the advance, one claim-send-apply cycle at a time; returns the count.

    Safe to run twice at once (SKIP LOCKED) and again after a crash: it only ever claims pending payouts.
    """
    no_transaction()
    sent = 0
    finish = False
    while limit is None or sent < limit:
        claim = payout_claim_next(advance_id=advance_id, now=now)
        if claim is None:
            break
        if claim.attempt_id is None:
            finish = finish or claim.finished_payout
            continue
        sent += 1
        result = attempt_submit(attempt_id=claim.attempt_id)
        applied = attempt_apply(
            attempt_id=claim.attempt_id, status=result.status, code=result.code, source="submit"
        )
        finish = finish or applied.final
    if finish:
        advance_try_finish(advance_id=advance_id)
    return sent


def attempt_query(*, attempt_id: int, now: datetime | None = None) -> Applied:
    """Ask the channel about a live attempt (outside any transaction) and apply the answer."""
    no_transaction()
    attempt = PayoutAttempt.objects.select_related("channel").get(pk=attempt_id)
    if attempt.status not in LIVE:
        return Applied(advance_id=None)
    try:
        answer = adapter_for(attempt.channel).query(attempt.serial)
        if not isinstance(answer, QueryResult):
            raise ChannelError(f"unparseable answer {answer!r}")
    except Exception as exc:  # noqa: BLE001 - a failed query tells nothing; ask again later
        logger.warning("status query for %s failed: %s", attempt.serial, exc)
        answer = QueryResult("processing", raw={"error": str(exc)[:200]})
        status = "error"
    else:
        status = answer.status
    applied = attempt_apply(
        attempt_id=attempt_id, status=status, code=answer.code, source="query", now=now, queried=True
    )
    if applied.final:
        advance_try_finish(advance_id=applied.advance_id)
    return applied
