"""The claim-send-apply cycle for an advance's payouts, status queries, and finishing an advance."""


import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

from funding.models import FINAL_PAYOUT_STATES, Advance, Payout, PayoutStatus
from funding.services.advances import advance_finish_disbursement
from funding.services.calendar import business_date_current
from settlement.adapters.base import ChannelError, QueryResult, adapter_for
from settlement.models import PayoutAttempt
from settlement.services.disbursement.apply import attempt_apply, attempts_apply_batch, attempts_submit_batch
from settlement.services.disbursement.claim import payouts_claim_batch
from settlement.services.disbursement.common import (
    LIVE,
    no_transaction,
)

logger = logging.getLogger(__name__)


def advance_try_finish(*, advance_id: int) -> None:
    """After the commit of final payout outcomes: the advance takes in what is known (contract 1.7: what its
    succeeded payouts paid is owed even while others are open) and finishes once all its payouts are final.

    A cheap look first: while payouts are still open and every success is already counted in the advance,
    nothing is new, so the advance's lock is not taken and its payouts are not read.
    """
    if Payout.objects.filter(advance_id=advance_id).exclude(status__in=FINAL_PAYOUT_STATES).exists():
        counted = Advance.objects.filter(pk=advance_id).values_list("disbursed_amount", flat=True).first()
        succeeded = Payout.objects.filter(advance_id=advance_id, status=PayoutStatus.SUCCEEDED).aggregate(
            total=Sum("amount"))["total"] or Decimal("0.00")
        if counted == succeeded:
            return
    advance_finish_disbursement(advance_id=advance_id, business_date=business_date_current())


def advance_dispatch(*, advance_id: int, now: datetime | None = None, limit: int | None = None) -> int:
    """Send every due pending payout of the advance, batch after batch; returns the count sent.

    Safe to run twice at once (SKIP LOCKED) and again after a crash: it only ever claims pending payouts.
    """
    no_transaction()
    sent = 0
    finish = False
    while limit is None or sent < limit:
        size = settings.DISBURSEMENT_BATCH_SIZE
        if limit is not None:
            size = min(size, limit - sent)
        batch = _dispatch_batch(advance_id=advance_id, size=size, now=now)
        if batch is None:
            break
        sent += batch.sent
        finish = finish or batch.final
    if finish:
        advance_try_finish(advance_id=advance_id)
    return sent


def advance_dispatch_batch(*, advance_id: int, now: datetime | None = None, size: int | None = None) -> int:
    """One batch: claim up to `size` (default DISBURSEMENT_BATCH_SIZE) due pending payouts of the advance and
    commit their attempts (one transaction), send them (one request per channel for batch-file channels),
    apply the answers (one transaction for the successes); finish the advance if it is done. Returns the
    count sent. What one dispatch task does."""
    no_transaction()
    batch = _dispatch_batch(advance_id=advance_id, size=size or settings.DISBURSEMENT_BATCH_SIZE, now=now)
    if batch is None:
        return 0
    if batch.final:
        advance_try_finish(advance_id=advance_id)
    return batch.sent


@dataclass
class _Batch:
    sent: int
    final: bool


def _dispatch_batch(*, advance_id: int, size: int, now: datetime | None) -> _Batch | None:
    claimed = payouts_claim_batch(advance_id=advance_id, limit=size, now=now)
    if claimed is None:
        return None
    final = claimed.finished_payout
    if claimed.attempt_ids:
        results = attempts_submit_batch(attempt_ids=claimed.attempt_ids)
        for attempt_id, result in results.items():
            if result.status == "unknown" and result.raw.get("error"):
                logger.warning("attempt %s: no clear answer from the channel: %s", attempt_id, result.raw["error"])
        applied = attempts_apply_batch(
            answers=[(pk, results[pk].status, results[pk].code) for pk in claimed.attempt_ids],
            source="submit",
        )
        final = final or bool(applied.final_advance_ids)
    return _Batch(sent=len(claimed.attempt_ids), final=final)


def attempts_query_batch(*, attempt_ids: list[int], now: datetime | None = None) -> int:
    """Ask the channels about live attempts, one `query_batch` per channel (outside any transaction), and apply
    each answer (attempt_apply). A channel that fails to answer tells nothing: asked again later."""
    no_transaction()
    attempts = list(
        PayoutAttempt.objects.select_related("channel").filter(pk__in=attempt_ids, status__in=LIVE).order_by("pk")
    )
    by_channel: dict[int, list[PayoutAttempt]] = {}
    for attempt in attempts:
        by_channel.setdefault(attempt.channel_id, []).append(attempt)
    finished: set[int] = set()
    for group in by_channel.values():
        channel = group[0].channel
        try:
            answers = adapter_for(channel).query_batch([a.serial for a in group])
            if not isinstance(answers, dict):
                raise ChannelError(f"unparseable answer {answers!r}")
        except Exception as exc:  # noqa: BLE001 - a failed query tells nothing; ask again later
            logger.warning("status query of %s attempts at %s failed: %s", len(group), channel.code, exc)
            answers = {}
        for attempt in group:
            answer = answers.get(attempt.serial)
            if isinstance(answer, QueryResult):
                status, code = answer.status, answer.code
            else:
                status, code = "error", ""
            try:
                applied = attempt_apply(
                    attempt_id=attempt.pk, status=status, code=code, source="query", now=now, queried=True
                )
            except Exception:  # one bad attempt must not stop the others; its lease expires, it is asked again
                logger.exception("status query of attempt %s failed", attempt.pk)
                continue
            if applied.final and applied.advance_id is not None:
                finished.add(applied.advance_id)
    for advance_id in sorted(finished):
        advance_try_finish(advance_id=advance_id)
    return len(attempts)
