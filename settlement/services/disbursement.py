"""D0 disbursement: claim a payout, write its attempt, call the channel, apply the answer. At most once.

The order of events for one attempt:
1. One transaction: lock the payout (SKIP LOCKED), route it, insert the attempt as `processing` and post the
   funds out. It commits BEFORE the channel is called, so a crash after the call can never forget the call.
2. No transaction: call the channel. Anything but a clear answer is `unknown`.
3. One transaction: lock the payout and the attempt, apply the answer if the attempt is still live.

An attempt that is `processing` or `unknown` is only ever queried, never sent again: the partial unique index
(one live attempt per payout) refuses a second attempt, and the code never re-submits an existing one.
A new attempt exists only after an explicit, mapped, retryable failure.
"""

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from config.ops import metrics
from funding.models import Advance, AdvanceStatus, CalendarDay
from funding.representations import payout_representation
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from funding.services.events import event_emit
from ledger.models import Account, AccountKind
from ledger.services import account_get_or_create
from settlement.adapters.base import ChannelError, QueryResult, SubmitResult, adapter_for
from settlement.models import (
    AttemptStatus,
    Channel,
    ErrorDecision,
    ManualReview,
    ManualReviewStatus,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)
from settlement.services.channels import channel_fee, channel_success_rates, error_map_lookup
from settlement.services.postings import (
    payout_post_confirmed,
    payout_post_funds_out,
    payout_post_returned,
    payout_release_unsent,
)
from settlement.services.routing import RoutingDecision, route_choose

logger = logging.getLogger(__name__)
T = TypeVar("T")

LIVE = (AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN)


class OpenTransactionError(RuntimeError):
    """A channel call was about to happen inside a database transaction."""


def _no_transaction() -> None:
    if connection.in_atomic_block:
        raise OpenTransactionError("channel calls must run outside any database transaction")


def _retrying(fn: Callable[[], T], *, tries: int = 6) -> T:
    """Run one short transaction, again on a deadlock or serialization failure (PostgreSQL rolled it back)."""
    for n in range(tries):
        try:
            return fn()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in ("40P01", "40001") or connection.in_atomic_block or n == tries - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05) * (n + 1))  # noqa: S311
    raise AssertionError("unreachable")


_ENSURED_CHANNEL_ACCOUNTS: set[str] = set()


def _lock_money_rows(payout: Payout, channel: Channel, *, confirming: bool = False) -> None:
    """Lock the rows a payout posting will update, in one statement and in one global order (account id,
    then the credit line), so that concurrent postings of different outcomes cannot deadlock.

    Funds out and returns touch the company's settlement and receivable accounts, the channel's in-transit
    account and the credit line; a confirmation touches in-transit, clearing and channel cost.
    """
    if channel.code not in _ENSURED_CHANNEL_ACCOUNTS:
        for kind in (AccountKind.PAYOUTS_IN_TRANSIT, AccountKind.CHANNEL_CLEARING):
            account_get_or_create(kind=kind, owner=channel.code)
        account_get_or_create(kind=AccountKind.CHANNEL_COST)
        _ENSURED_CHANNEL_ACCOUNTS.add(channel.code)
    company = payout.advance.company.code
    if confirming:
        keys = [
            (AccountKind.PAYOUTS_IN_TRANSIT, channel.code),
            (AccountKind.CHANNEL_CLEARING, channel.code),
            (AccountKind.CHANNEL_COST, ""),
        ]
    else:
        keys = [
            (AccountKind.SETTLEMENT, company),
            (AccountKind.ADVANCE_RECEIVABLE, company),
            (AccountKind.PAYOUTS_IN_TRANSIT, channel.code),
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM ledger_account WHERE currency = %s AND (kind, owner) IN ("
            + ", ".join(["(%s, %s)"] * len(keys))
            + ") ORDER BY id FOR NO KEY UPDATE",
            [payout.advance.currency, *[v for key in keys for v in key]],
        )
        if not confirming:
            cursor.execute(
                "SELECT id FROM funding_creditline WHERE id = %s FOR NO KEY UPDATE",
                [payout.advance.credit_line_id],
            )


_CACHE: dict[str, tuple[float, object]] = {}


def _cached(key: str, load: Callable[[], T]) -> T:
    """Per-process cache for routing inputs that change slowly (channels, rates, calendar)."""
    ttl = settings.DISBURSEMENT_ROUTING_CACHE_SECONDS
    hit = _CACHE.get(key)
    if ttl > 0 and hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]  # type: ignore[return-value]
    value = load()
    _CACHE[key] = (time.monotonic(), value)
    return value


def _is_business_day(day) -> bool:
    def load() -> bool:
        entry = CalendarDay.objects.filter(date=day).first()
        return bool(entry and entry.is_business_day)

    return _cached(f"business_day:{day.isoformat()}", load)


def query_delay(query_count: int) -> timedelta:
    backoff = settings.DISBURSEMENT_QUERY_BACKOFF_SECONDS
    if query_count < len(backoff):
        return timedelta(seconds=backoff[query_count])
    return timedelta(seconds=settings.DISBURSEMENT_QUERY_INTERVAL_SECONDS)


def next_query_time(*, attempt: PayoutAttempt, channel: Channel, now: datetime) -> datetime:
    """The next status query on the back-off schedule. Past the channel's cut-off the statement takes over:
    the next look is at the review deadline."""
    when = now + query_delay(attempt.query_count)
    if channel.service_end is not None:
        local = timezone.localtime(now)
        cutoff = local.replace(
            hour=channel.service_end.hour, minute=channel.service_end.minute, second=0, microsecond=0
        )
        if when > cutoff:
            when = attempt.review_due_at
    return max(min(when, attempt.review_due_at), now)


def route_payout(*, payout: Payout, attempts: list[PayoutAttempt], now: datetime) -> RoutingDecision:
    last = max(attempts, key=lambda a: a.number) if attempts else None
    same = last.channel_id if last is not None and last.decision == ErrorDecision.RETRY_SAME_CHANNEL else None
    return route_choose(
        amount=payout.amount,
        bank_code=payout.bank_code,
        channels=_cached("channels", lambda: list(Channel.objects.all())),
        tried_channel_ids={a.channel_id for a in attempts},
        rates=_cached("rates", lambda: channel_success_rates(now=now)),
        now=now,
        business_day=_is_business_day(timezone.localdate(now)),
        retry=bool(attempts),
        same_channel_id=same,
        unhealthy_below=settings.DISBURSEMENT_UNHEALTHY_BELOW,
        min_samples=settings.DISBURSEMENT_UNHEALTHY_MIN_SAMPLES,
    )


def _emit_payout_event(payout: Payout, type_: str) -> None:
    attempts = list(payout.attempts.select_related("channel"))
    event_emit(
        company=payout.advance.company,
        type=type_,
        resource_type="payout",
        resource_id=payout.public_id,
        version=payout.version,
        data=payout_representation(payout, attempts),
    )


@dataclass
class Claim:
    attempt_id: int | None = None
    finished_payout: bool = False  # a payout became final without an attempt


def payout_claim_next(*, advance_id: int, now: datetime | None = None) -> Claim | None:
    """Claim one due pending payout of the advance and commit its attempt. None: nothing left to claim."""
    now = now or timezone.now()
    return _retrying(lambda: _claim_next(advance_id, now))


def _claim_next(advance_id: int, now: datetime) -> Claim | None:
    with transaction.atomic():
        # Lock order everywhere: advance, then payout, then attempt. The advance is locked only while it is
        # still `reserved` (the move to `disbursing` races with a cancel); once disbursing, a cancel is
        # impossible and claims of one advance's payouts run in parallel (SKIP LOCKED on the payouts).
        advance = Advance.objects.select_related("company").filter(pk=advance_id).first()
        if advance is not None and advance.status == AdvanceStatus.RESERVED:
            advance = (
                Advance.objects.select_for_update(of=("self",))
                .select_related("company")
                .filter(pk=advance_id)
                .first()
            )
        if advance is None or advance.status not in (AdvanceStatus.RESERVED, AdvanceStatus.DISBURSING):
            return None
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .filter(advance=advance, status=PayoutStatus.PENDING)
            .exclude(dispatch_after__gt=now)
            .order_by("sequence")
            .first()
        )
        if payout is None:
            return None
        payout.advance = advance
        if advance.status == AdvanceStatus.RESERVED:
            advance.start_disbursing()
            advance.version += 1
            advance.save(update_fields=["status", "version", "updated_at"])
        attempts = list(payout.attempts.all())
        if any(a.status in (*LIVE, AttemptStatus.SUCCEEDED) for a in attempts):
            # Cannot happen through this code; refuse loudly rather than send twice.
            raise RuntimeError(f"payout {payout.public_id} is pending with a live attempt")
        business_date = business_date_current()
        if payout.attempt_count >= settings.DISBURSEMENT_MAX_ATTEMPTS:
            _fail_unsent(payout, code=payout.failure_code or "max_attempts_reached")
            return Claim(finished_payout=True)
        decision = route_payout(payout=payout, attempts=attempts, now=now)
        if decision.channel is None:
            if decision.impossible:
                _fail_unsent(payout, code=payout.failure_code or "no_eligible_channel")
                return Claim(finished_payout=True)
            payout.dispatch_after = now + timedelta(seconds=settings.DISBURSEMENT_WAIT_FOR_CHANNEL_SECONDS)
            payout.save(update_fields=["dispatch_after", "updated_at"])
            return Claim()
        channel = decision.channel
        number = payout.attempt_count + 1
        attempt = PayoutAttempt(
            payout=payout,
            number=number,
            serial=f"{payout.public_id}-{number}",
            channel=channel,
            amount=payout.amount,
            fee=channel_fee(channel=channel, amount=payout.amount),
            routing=decision.as_json(),
            review_due_at=now + timedelta(seconds=settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS),
        )
        attempt.next_query_at = next_query_time(attempt=attempt, channel=channel, now=now)
        attempt.save()
        payout.start_attempt()
        payout.attempt_count = number
        payout.dispatch_after = None
        payout.version += 1
        _lock_money_rows(payout, channel)
        payout_post_funds_out(
            payout=payout, channel=channel, serial=attempt.serial, business_date=business_date
        )
        payout.save(
            update_fields=["status", "attempt_count", "dispatch_after", "version", "funds_out", "updated_at"]
        )
    return Claim(attempt_id=attempt.pk)


def _fail_unsent(payout: Payout, *, code: str) -> None:
    """Final failure of a payout whose funds are not out: give back its holds."""
    payout.mark_failed()
    payout.failure_code = code
    payout.version += 1
    list(
        Account.objects.select_for_update(no_key=True)
        .filter(kind=AccountKind.SETTLEMENT, owner=payout.advance.company.code)
        .values_list("pk")
    )
    payout_release_unsent(payout=payout)
    payout.save(update_fields=["status", "failure_code", "version", "updated_at"])
    _emit_payout_event(payout, "payout.failed")
    audit_record(
        action="payout.failed",
        obj=payout,
        actor_label="disbursement",
        company=payout.advance.company,
        after={"status": "failed", "failure_code": code},
    )


def attempt_submit(*, attempt_id: int) -> SubmitResult:
    """Hand a freshly claimed attempt to its channel. Only the claimer calls this, exactly once."""
    _no_transaction()
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
    applied = _retrying(lambda: _apply(attempt_id, status, code, source, now, queried))
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
    _lock_money_rows(payout, attempt.channel, confirming=True)
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
    _emit_payout_event(payout, "payout.succeeded")


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
    _lock_money_rows(payout, attempt.channel)
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
        transaction.on_commit(lambda: _schedule(advance_id))
        return True
    payout.mark_failed()
    payout.save(update_fields=["status", "failure_code", "version", "funds_out", "updated_at"])
    if was == PayoutStatus.MANUAL_REVIEW:
        _close_review(attempt, resolution="failed", by=source)
    _emit_payout_event(payout, "payout.failed")
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
    _emit_payout_event(payout, "payout.manual_review")


def _schedule(advance_id: int) -> None:
    from settlement.services.dispatch import advance_schedule_dispatch

    advance_schedule_dispatch(advance_id=advance_id)


def advance_try_finish(*, advance_id: int) -> None:
    """After the commit of a final payout outcome: the advance finishes once all its payouts are final."""
    from funding.services.advances import advance_finish_disbursement

    advance_finish_disbursement(advance_id=advance_id, business_date=business_date_current())


def advance_dispatch(*, advance_id: int, now: datetime | None = None, limit: int | None = None) -> int:
    """Send every due pending payout of the advance, one claim-send-apply cycle at a time; returns the count.

    Safe to run twice at once (SKIP LOCKED) and again after a crash: it only ever claims pending payouts.
    """
    _no_transaction()
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
    _no_transaction()
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


def attempts_poll_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Query every live attempt whose next query is due. Claims them with a short lease so pollers share."""
    _no_transaction()
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
    for attempt_id in ids:
        try:
            attempt_query(attempt_id=attempt_id, now=now)
        except Exception:  # one bad attempt must not stop the others; its lease expires and it is asked again
            logger.exception("status query of attempt %s failed", attempt_id)
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
    from settlement.models import FINAL_PAYOUT_STATES

    ids = list(
        Advance.objects.filter(status=AdvanceStatus.DISBURSING)
        .exclude(payouts__status__in=[s for s in PayoutStatus.values if s not in FINAL_PAYOUT_STATES])
        .values_list("pk", flat=True)
    )
    for advance_id in ids:
        advance_try_finish(advance_id=advance_id)
    return len(ids)


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
