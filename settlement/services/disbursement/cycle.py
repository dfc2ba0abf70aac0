"""The claim-send-apply cycle for an advance's payouts, status queries, and finishing an advance."""


import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection

from funding.models import FINAL_PAYOUT_STATES, AdvanceStatus, PayoutStatus
from funding.services.advances import advances_finish_disbursement
from funding.services.calendar import business_date_current
from settlement.adapters.base import ChannelError, QueryResult, adapter_for
from settlement.models import PayoutAttempt
from settlement.services.disbursement.apply import attempt_apply, attempts_apply_batch, attempts_submit_batch
from settlement.services.disbursement.claim import payouts_claim_batch
from settlement.services.disbursement.common import (
    LIVE,
    no_transaction,
)
from settlement.services.disbursement.scheduling import dispatch_due_schedule, dispatch_gate_open

logger = logging.getLogger(__name__)

_FINISH_CHUNK = 500


def advance_try_finish(*, advance_id: int) -> None:
    """After the commit of final payout outcomes of one advance: advances_try_finish for it."""
    advances_try_finish(advance_ids=[advance_id])


def advances_try_finish(*, advance_ids: Iterable[int]) -> None:
    """After the commit of final payout outcomes: each advance takes in what is known (contract 1.7: what its
    succeeded payouts paid is owed even while others are open) and finishes once all its payouts are final,
    set-based (funding's advances_finish_disbursement), however many advances a batch carried.

    A cheap look first, one statement for all of them: an advance whose payouts are still open and whose every
    success is already counted has nothing new, so its lock is not taken and its payouts are not read.
    """
    ids = sorted(set(advance_ids))
    # A sweep may bring thousands: one transaction per chunk keeps the locks few and short.
    for start in range(0, len(ids), _FINISH_CHUNK):
        chunk = ids[start : start + _FINISH_CHUNK]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT v.id FROM funding_advance v
                 WHERE v.id = ANY(%s) AND v.status = ANY(%s)
                   AND (NOT EXISTS (SELECT 1 FROM funding_payout o WHERE o.advance_id = v.id AND o.status <> ALL(%s))
                        OR v.disbursed_amount <> (SELECT coalesce(sum(s.amount), 0) FROM funding_payout s
                                                   WHERE s.advance_id = v.id AND s.status = %s))
                """,
                [chunk, [AdvanceStatus.DISBURSING.value, AdvanceStatus.OVERDUE.value],
                 [str(s) for s in FINAL_PAYOUT_STATES], PayoutStatus.SUCCEEDED.value],
            )
            due = [row[0] for row in cursor.fetchall()]
        if due:
            advances_finish_disbursement(advance_ids=due, business_date=business_date_current())


def advance_dispatch(*, advance_id: int, now: datetime | None = None, limit: int | None = None) -> int:
    """Send every due pending payout of the advance, batch after batch, each batch filled up with other
    advances' due payouts; returns the count sent.

    Safe to run twice at once (SKIP LOCKED) and again after a crash: it only ever claims pending payouts.
    """
    no_transaction()
    sent = 0
    finished: set[int] = set()
    while limit is None or sent < limit:
        size = settings.DISBURSEMENT_BATCH_SIZE
        if limit is not None:
            size = min(size, limit - sent)
        batch = _dispatch_batch(advance_id=advance_id, size=size, now=now)
        if batch is None:
            break
        sent += batch.sent
        finished |= batch.final_advance_ids
    advances_try_finish(advance_ids=finished)
    return sent


def advance_dispatch_due(
    *, advance_id: int, currency: str, now: datetime | None = None, size: int | None = None
) -> int:
    """The dispatch gate's task (scheduling): open the currency's gate first, so that an advance committed from
    here on publishes again, then one batch: the advance's own due payouts first, then other advances' of the
    currency (FIFO), even when its own were taken. A full batch may have left more behind: the next task is
    scheduled (through the gate) as soon as the claim has committed, before this one calls the channels."""
    no_transaction()
    dispatch_gate_open(currency)
    size = size or settings.DISBURSEMENT_BATCH_SIZE
    batch = _dispatch_batch(
        advance_id=advance_id, size=size, now=now, any_due=True,
        when_full=lambda: dispatch_due_schedule(advance_id=advance_id, currency=currency),
    )
    if batch is None:
        return 0
    advances_try_finish(advance_ids=batch.final_advance_ids)
    return batch.sent


def advance_dispatch_batch(*, advance_id: int, now: datetime | None = None, size: int | None = None) -> int:
    """One batch: claim up to `size` (default DISBURSEMENT_BATCH_SIZE) due pending payouts, the advance's own
    first and then other advances', and commit their attempts (one transaction), send them (one request per
    channel for batch-file channels), apply the answers (one transaction for the successes); finish the
    advances that are done, set-based. Returns the count sent. What one dispatch task does; a task whose
    advance's payouts another batch took ends after one statement."""
    no_transaction()
    batch = _dispatch_batch(advance_id=advance_id, size=size or settings.DISBURSEMENT_BATCH_SIZE, now=now)
    if batch is None:
        return 0
    advances_try_finish(advance_ids=batch.final_advance_ids)
    return batch.sent


@dataclass
class _Batch:
    sent: int
    final_advance_ids: set[int]


def _dispatch_batch(
    *, advance_id: int, size: int, now: datetime | None, any_due: bool = False,
    when_full: Callable[[], None] | None = None,
) -> _Batch | None:
    claimed = payouts_claim_batch(advance_id=advance_id, limit=size, now=now, any_due=any_due)
    if claimed is None:
        return None
    if when_full is not None and claimed.locked >= size:
        when_full()
    final = set(claimed.finished_advance_ids)
    if claimed.attempt_ids:
        results = attempts_submit_batch(attempts=claimed.attempts)
        for attempt_id, result in results.items():
            if result.status == "unknown" and result.raw.get("error"):
                logger.warning("attempt %s: no clear answer from the channel: %s", attempt_id, result.raw["error"])
        applied = attempts_apply_batch(
            answers=[(pk, results[pk].status, results[pk].code) for pk in claimed.attempt_ids],
            source="submit",
        )
        final |= applied.final_advance_ids
    return _Batch(sent=len(claimed.attempt_ids), final_advance_ids=final)


def attempts_query_batch(*, attempt_ids: list[int], now: datetime | None = None) -> int:
    """Ask the channels about live attempts, one `query_batch` per channel (outside any transaction), and apply
    the answers: a channel's successes together (attempts_apply_batch), every other answer on its own
    (attempt_apply). A channel that fails to answer tells nothing: asked again later."""
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
        # The successes, the bulk after an outage, set-based in one transaction (as the submit path applies them);
        # if that fails, one by one below like every other answer.
        succeeded = [a.pk for a in group
                     if isinstance(answer := answers.get(a.serial), QueryResult) and answer.status == "succeeded"]
        if succeeded:
            try:
                applied_batch = attempts_apply_batch(
                    answers=[(pk, "succeeded", "") for pk in succeeded], source="query", now=now, queried=True
                )
            except Exception:  # the single-attempt path below takes them one by one
                logger.exception("status answers of %s attempts could not be applied together", len(succeeded))
            else:
                finished |= applied_batch.final_advance_ids
                done = set(succeeded)
                group = [a for a in group if a.pk not in done]
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
    advances_try_finish(advance_ids=finished)
    return len(attempts)
