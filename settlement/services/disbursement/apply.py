"""Steps 2 and 3: hand a claimed attempt to its channel (outside any transaction), then apply the answer
(submit, status query, statement or staff) to the attempt if it is still live. Idempotent."""


import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.ops import metrics
from funding.models import Payout, PayoutStatus
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from settlement.adapters.base import ChannelError, SubmitResult, adapter_for
from settlement.models import AttemptStatus, ErrorDecision, ManualReview, ManualReviewStatus, PayoutAttempt
from settlement.services.channels import error_map_lookup
from settlement.services.disbursement.common import (
    LIVE,
    emit_payout_event,
    lock_money_rows,
    next_query_time,
    no_transaction,
    retrying,
    route_payout,
)
from settlement.services.disbursement.scheduling import advance_schedule_dispatch
from settlement.services.postings import (
    payout_post_confirmed,
    payout_post_returned,
)

logger = logging.getLogger(__name__)


def attempt_submit(*, attempt_id: int) -> SubmitResult:
    """Hand a freshly claimed attempt to its channel. Only the claimer calls this, exactly once."""
    no_transaction()
    attempt = PayoutAttempt.objects.select_related("channel", "payout").get(pk=attempt_id)
    PayoutAttempt.objects.filter(pk=attempt_id, submitted_at__isnull=True).update(submitted_at=timezone.now())
    try:
        result = adapter_for(attempt.channel).submit(attempt)
        if not isinstance(result, SubmitResult) or result.status not in (
            "accepted",
            "succeeded",
            "failed",
            "unknown",
        ):
            raise ChannelError(f"unparseable answer {result!r}")
    except Exception as exc:  # noqa: BLE001 - timeout, reset, 5xx, garbage: all mean "maybe paid"
        logger.warning(
            "channel %s gave no clear answer for %s: %s", attempt.channel.code, attempt.serial, exc
        )
        return SubmitResult("unknown", raw={"error": str(exc)[:200]})
    return result


@dataclass
class Applied:
    changed: bool = False
    final: bool = False
    retry: bool = False
    advance_id: int | None = None


def attempt_apply(
    *,
    attempt_id: int,
    status: str,
    code: str = "",
    source: str,
    now: datetime | None = None,
    queried: bool = False,
) -> Applied:
    """Apply a channel answer (submit, query or statement) to a live attempt. Idempotent: a resolved attempt
    is left as it is.

    status: succeeded | failed | unknown | accepted | processing | not_found | error
    """
    now = now or timezone.now()
    applied = retrying(lambda: _apply(attempt_id, status, code, source, now, queried))
    if applied.changed:
        attempt = PayoutAttempt.objects.select_related("channel").only("status", "channel__code").get(pk=attempt_id)
        metrics.payout_attempt(attempt.channel.code, attempt.status)
    return applied


def _apply(attempt_id: int, status: str, code: str, source: str, now: datetime, queried: bool) -> Applied:
    with transaction.atomic():
        attempt = PayoutAttempt.objects.select_related("channel").get(pk=attempt_id)
        payout = (
            Payout.objects.select_for_update(of=("self",))
            .select_related("advance__company")
            .get(pk=attempt.payout_id)
        )
        attempt = (
            PayoutAttempt.objects.select_for_update(of=("self",)).select_related("channel").get(pk=attempt_id)
        )
        result = Applied(advance_id=payout.advance_id)
        if queried:
            attempt.query_count += 1
            attempt.last_query = f"{status}:{code}" if code else status
        if attempt.status not in LIVE:
            if queried:
                attempt.save(update_fields=["query_count", "last_query"])
            return result
        if status == "succeeded":
            _resolve_succeeded(payout, attempt, source=source, now=now)
            result.changed = result.final = True
            return result
        if status == "failed":
            mapped = error_map_lookup(channel=attempt.channel, channel_code=code)
            attempt.channel_code = code
            if mapped.decision != ErrorDecision.TREAT_AS_UNKNOWN:
                retry = _resolve_failed(
                    payout,
                    attempt,
                    unified=mapped.unified_code,
                    decision=mapped.decision,
                    source=source,
                    now=now,
                )
                result.changed = True
                result.retry, result.final = retry, not retry
                return result
            attempt.failure_code = mapped.unified_code
            status = "unknown"
        if status == "unknown" and attempt.status == AttemptStatus.PROCESSING:
            attempt.mark_unknown()
            if payout.status == PayoutStatus.PROCESSING:
                payout.mark_unknown()
                payout.version += 1
                payout.save(update_fields=["status", "version", "updated_at"])
            result.changed = True
        # Still not known (or merely accepted): query later; past the deadline, hand over to staff.
        if now >= attempt.review_due_at and payout.status != PayoutStatus.MANUAL_REVIEW:
            _to_manual_review(payout, attempt, reason=f"unresolved after {attempt.query_count} queries")
            result.changed = True
        elif payout.status == PayoutStatus.MANUAL_REVIEW:
            attempt.next_query_at = None
        else:
            attempt.next_query_at = next_query_time(attempt=attempt, channel=attempt.channel, now=now)
        attempt.save(
            update_fields=[
                "status",
                "channel_code",
                "failure_code",
                "next_query_at",
                "query_count",
                "last_query",
            ]
        )
    return result


def _close_review(attempt: PayoutAttempt, *, resolution: str, by: str) -> None:
    review = ManualReview.objects.select_for_update().filter(attempt=attempt).first()
    if review is not None and review.status != ManualReviewStatus.RESOLVED:
        review.resolve()
        review.resolution = resolution
        review.resolved_by_label = by
        review.resolved_at = timezone.now()
        review.save(update_fields=["status", "resolution", "resolved_by_label", "resolved_at"])


def _resolve_succeeded(payout: Payout, attempt: PayoutAttempt, *, source: str, now: datetime) -> None:
    was = payout.status
    attempt.mark_succeeded()
    attempt.resolved_at = timezone.now()
    attempt.resolved_by = source
    attempt.next_query_at = None
    attempt.save(
        update_fields=["status", "resolved_at", "resolved_by", "next_query_at", "query_count", "last_query"]
    )
    payout.mark_succeeded()
    payout.failure_code = ""
    payout.version += 1
    lock_money_rows(payout, attempt.channel, confirming=True)
    payout.save(update_fields=["status", "failure_code", "version", "updated_at"])
    payout_post_confirmed(
        payout=payout,
        channel=attempt.channel,
        serial=attempt.serial,
        fee=attempt.fee,
        business_date=business_date_current(),
    )
    if was == PayoutStatus.MANUAL_REVIEW:
        _close_review(attempt, resolution="succeeded", by=source)
    emit_payout_event(payout, "payout.succeeded")


def _resolve_failed(
    payout: Payout, attempt: PayoutAttempt, *, unified: str, decision: str, source: str, now: datetime
) -> bool:
    """An explicit failure. Returns True when the payout goes back to pending for another attempt."""
    was = payout.status
    attempt.mark_failed()
    attempt.failure_code = unified
    attempt.decision = decision
    attempt.resolved_at = timezone.now()
    attempt.resolved_by = source
    attempt.next_query_at = None
    attempt.save(
        update_fields=[
            "status",
            "failure_code",
            "channel_code",
            "decision",
            "resolved_at",
            "resolved_by",
            "next_query_at",
            "query_count",
            "last_query",
        ]
    )
    retry = (
        decision in (ErrorDecision.FAILOVER, ErrorDecision.RETRY_SAME_CHANNEL)
        and was in (PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN)
        and payout.attempt_count < settings.DISBURSEMENT_MAX_ATTEMPTS
    )
    if retry:
        attempts = list(payout.attempts.all())
        retry = not route_payout(payout=payout, attempts=attempts, now=now).impossible
    payout.failure_code = unified
    payout.version += 1
    lock_money_rows(payout, attempt.channel)
    payout_post_returned(
        payout=payout,
        channel=attempt.channel,
        serial=attempt.serial,
        business_date=business_date_current(),
        final=not retry,
    )
    if retry:
        payout.await_retry()
        payout.save(update_fields=["status", "failure_code", "version", "funds_out", "updated_at"])
        advance_id = payout.advance_id
        transaction.on_commit(lambda: advance_schedule_dispatch(advance_id=advance_id))
        return True
    payout.mark_failed()
    payout.save(update_fields=["status", "failure_code", "version", "funds_out", "updated_at"])
    if was == PayoutStatus.MANUAL_REVIEW:
        _close_review(attempt, resolution="failed", by=source)
    emit_payout_event(payout, "payout.failed")
    return False


def _to_manual_review(payout: Payout, attempt: PayoutAttempt, *, reason: str) -> None:
    if attempt.status == AttemptStatus.PROCESSING:
        attempt.mark_unknown()
    if payout.status == PayoutStatus.PROCESSING:
        payout.mark_unknown()
    payout.send_to_manual_review()
    payout.version += 1
    payout.save(update_fields=["status", "version", "updated_at"])
    attempt.next_query_at = None
    ManualReview.objects.get_or_create(attempt=attempt, defaults={"payout": payout, "opened_reason": reason})
    audit_record(
        action="payout.manual_review",
        obj=payout,
        actor_label="disbursement",
        company=payout.advance.company,
        after={"status": "manual_review", "attempt": attempt.serial},
        reason=reason,
    )
    logger.error(
        "ALERT payout %s attempt %s needs manual review: %s", payout.public_id, attempt.serial, reason
    )
    emit_payout_event(payout, "payout.manual_review")


def staff_failure_apply(*, attempt_id: int) -> Applied:
    """Staff (four eyes) confirmed that the channel did not pay: a final failure, funds come back.
    Runs inside the approval's transaction."""
    now = timezone.now()
    with transaction.atomic():
        attempt = PayoutAttempt.objects.get(pk=attempt_id)
        payout = (
            Payout.objects.select_for_update(of=("self",))
            .select_related("advance__company")
            .get(pk=attempt.payout_id)
        )
        attempt = (
            PayoutAttempt.objects.select_for_update(of=("self",)).select_related("channel").get(pk=attempt_id)
        )
        if attempt.status not in LIVE:
            return Applied(advance_id=payout.advance_id)
        _resolve_failed(
            payout,
            attempt,
            unified="failed_confirmed_by_staff",
            decision=ErrorDecision.FINAL_FAILURE,
            source="manual_review",
            now=now,
        )
    return Applied(changed=True, final=True, advance_id=payout.advance_id)
