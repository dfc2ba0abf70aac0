"""Steps 2 and 3: hand a claimed attempt to its channel (outside any transaction), then apply the answer
(submit, status query, statement or staff) to the attempt if it is still live. Idempotent."""


import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.fsm import fsm_update_exactly
from config.ops import metrics
from funding.models import Advance, CreditLine, Payout, PayoutStatus
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from funding.services.events import events_schedule_delivery, payout_events_insert
from funding.services.line_counters import line_draw, line_release
from ledger.models import AccountKind
from ledger.services import account_hold, ledger_post_many
from settlement.adapters.base import ChannelError, SubmitResult, adapter_for
from settlement.models import (
    AttemptStatus,
    ChannelErrorMapping,
    ErrorDecision,
    ManualReview,
    ManualReviewStatus,
    PayoutAttempt,
)
from settlement.services.channels import error_map_lookup
from settlement.services.disbursement.common import (
    LIVE,
    channel_codes,
    emit_payout_event,
    ensure_channel_accounts,
    lock_accounts,
    lock_money_rows,
    next_query_time,
    no_transaction,
    retrying,
    route_payout,
    routing_inputs,
)
from settlement.services.disbursement.scheduling import advance_schedule_dispatch
from settlement.services.postings import (
    PostingError,
    confirmed_posting,
    payout_post_confirmed,
    payout_post_returned,
    returned_posting,
)

logger = logging.getLogger(__name__)


_SUBMIT_STATUSES = ("accepted", "succeeded", "failed", "unknown")


def attempts_submit_batch(*, attempts: Sequence[PayoutAttempt]) -> dict[int, SubmitResult]:
    """Hand freshly claimed attempts to their channels, one `submit_batch` per channel (outside any
    transaction). Only the claimer calls this, exactly once per attempt, with the attempts its committed claim
    wrote (channel and payout attached: nothing is read again). Anything but a clear answer for an attempt (an
    exception, a missing or unparseable line) is `unknown` for it."""
    no_transaction()
    by_channel: dict[int, list[PayoutAttempt]] = {}
    for attempt in attempts:
        by_channel.setdefault(attempt.channel_id, []).append(attempt)
    results: dict[int, SubmitResult] = {}
    for group in by_channel.values():
        channel = group[0].channel
        try:
            answers = adapter_for(channel).submit_batch(group)
            if not isinstance(answers, dict):
                raise ChannelError(f"unparseable answer {answers!r}")
        except Exception as exc:  # noqa: BLE001 - timeout, reset, 5xx, garbage: all mean "maybe paid"
            logger.warning("channel %s gave no clear answer for a batch of %s: %s", channel.code, len(group), exc)
            answers = {}
            error = str(exc)[:200]
        else:
            error = "no answer for this serial"
        for attempt in group:
            result = answers.get(attempt.serial)
            if not isinstance(result, SubmitResult) or result.status not in _SUBMIT_STATUSES:
                if result is not None:
                    logger.warning("channel %s: unparseable answer for %s: %r", channel.code, attempt.serial, result)
                result = SubmitResult("unknown", raw={"error": error})
            results[attempt.pk] = result
    return results


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


@dataclass
class BatchApplied:
    changed: int = 0
    final_advance_ids: set[int] = field(default_factory=set)


def attempts_apply_batch(
    *, answers: list[tuple[int, str, str]], source: str, now: datetime | None = None, queried: bool = False
) -> BatchApplied:
    """Apply the channel's answers to a batch of attempts: (attempt id, status, code) each.

    Successes, the bulk of every batch, are applied set-based in one transaction whatever their number: the
    attempts and payouts move with one UPDATE each (WHERE the FSM's source states), the confirmations and fees
    are posted with two INSERTs and the `payout.succeeded` events written with one, delivered in batches once
    committed. Answers from submit that leave the outcome open (`unknown`, `accepted`) are also set-based
    (processing -> unknown for attempts and payouts, the next status query per attempt), and so are explicit
    failures the error map knows (`_apply_failed_batch`). A code read as unknown, a payout in manual review and
    anything at the review deadline go through `attempt_apply`, one by one, exactly as for a single payout.
    `queried`: the answers come from status queries (each attempt's query count and last answer recorded).
    """
    now = now or timezone.now()
    result = BatchApplied()
    if source == "submit":
        open_answers = [(pk, status) for pk, status, _ in answers if status in ("unknown", "accepted")]
        if open_answers:
            changed, rest = retrying(lambda: _apply_open_batch(open_answers, now))
            result.changed += changed
            handled = {pk for pk, _ in open_answers} - set(rest)
            answers = [answer for answer in answers if answer[0] not in handled]
        failed_answers = [(pk, code) for pk, status, code in answers if status == "failed"]
        if failed_answers:
            failed = retrying(lambda: _apply_failed_batch(failed_answers, now))
            result.changed += failed.changed
            result.final_advance_ids |= failed.final_advance_ids
            handled = {pk for pk, _ in failed_answers} - set(failed.rest)
            answers = [answer for answer in answers if answer[0] not in handled]
    succeeded = [attempt_id for attempt_id, status, _ in answers if status == "succeeded"]
    if succeeded:
        done = retrying(lambda: _apply_succeeded_batch(succeeded, source, now, queried=queried))
        result.changed += len(done)
        for channel_code, advance_id in done:
            metrics.payout_attempt(channel_code, "succeeded")
            result.final_advance_ids.add(advance_id)
    for attempt_id, status, code in answers:
        if status == "succeeded":
            continue
        applied = attempt_apply(
            attempt_id=attempt_id, status=status, code=code, source=source, now=now, queried=queried
        )
        result.changed += int(applied.changed)
        if applied.final and applied.advance_id is not None:
            result.final_advance_ids.add(applied.advance_id)
    return result


def _apply_open_batch(answers: list[tuple[int, str]], now: datetime) -> tuple[int, list[int]]:
    """Submit answers that leave the outcome open, set-based. Returns (attempts changed, ids left to the
    single-attempt path: a payout in manual review, or an attempt past its review deadline)."""
    status_of = dict(answers)
    rest: list[int] = []
    with transaction.atomic():
        payouts = {
            p.pk: p
            for p in Payout.objects.select_for_update(of=("self",))
            .only("id", "status")
            .filter(attempts__pk__in=list(status_of))
            .order_by("pk")
        }
        attempts = list(
            PayoutAttempt.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk__in=list(status_of))
            .order_by("pk")
        )
        to_unknown: list[PayoutAttempt] = []
        schedule: dict[datetime, list[int]] = {}
        for attempt in attempts:
            if attempt.status not in LIVE:
                continue  # resolved meanwhile: left as it is
            payout = payouts[attempt.payout_id]
            if payout.status not in (PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN) or now >= attempt.review_due_at:
                rest.append(attempt.pk)
                continue
            if status_of[attempt.pk] == "unknown" and attempt.status == AttemptStatus.PROCESSING:
                to_unknown.append(attempt)
            when = next_query_time(attempt=attempt, channel=attempt.channel, now=now)
            schedule.setdefault(when, []).append(attempt.pk)
        if to_unknown:
            fsm_update_exactly(
                PayoutAttempt.objects.filter(pk__in=[a.pk for a in to_unknown]), PayoutAttempt.mark_unknown,
                expected=len(to_unknown),
            )
            payout_ids = [a.payout_id for a in to_unknown if payouts[a.payout_id].status == PayoutStatus.PROCESSING]
            fsm_update_exactly(
                Payout.objects.filter(pk__in=payout_ids),
                Payout.mark_unknown,
                version=F("version") + 1,
                updated_at=timezone.now(),
                expected=len(payout_ids),
            )
        for when, pks in schedule.items():  # one UPDATE per distinct time (per channel, in practice)
            PayoutAttempt.objects.filter(pk__in=pks).update(next_query_at=when)
    for attempt in to_unknown:
        metrics.payout_attempt(attempt.channel.code, AttemptStatus.UNKNOWN)
    return len(to_unknown), rest


@dataclass
class _FailedBatch:
    changed: int = 0
    final_advance_ids: set[int] = field(default_factory=set)
    rest: list[int] = field(default_factory=list)  # left to the single-attempt path


def _apply_failed_batch(answers: list[tuple[int, str]], now: datetime) -> _FailedBatch:
    """Explicit failures answered by submit, set-based (what `_resolve_failed` does for one): the error map read
    once; attempts processing -> failed and payouts processing -> pending (a retry the error map allows and a
    channel can take) or failed, each with one UPDATE per failure code (WHERE the FSM's sources); the funds
    returned with two INSERTs; the credit lines' counters and the re-held own funds in one UPDATE per line and
    account; `payout.failed` events in one INSERT. A code the error map does not know or reads as unknown, and
    a payout not simply processing, go to the single-attempt path."""
    code_of = dict(answers)
    out = _FailedBatch()
    with transaction.atomic():
        payouts = {
            p.pk: p
            for p in Payout.objects.select_for_update(of=("self",))
            .select_related("advance__company")
            .filter(attempts__pk__in=list(code_of))
            .order_by("pk")
        }
        attempts = list(
            PayoutAttempt.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk__in=list(code_of))
            .order_by("pk")
        )
        mappings = {
            (m.channel_id, m.channel_code): m
            for m in ChannelErrorMapping.objects.filter(
                channel_id__in={a.channel_id for a in attempts}, channel_code__in=set(code_of.values())
            )
        }
        batch: list[tuple[PayoutAttempt, ChannelErrorMapping]] = []
        for attempt in attempts:
            if attempt.status not in LIVE:
                continue  # resolved meanwhile: left as it is
            mapping = mappings.get((attempt.channel_id, code_of[attempt.pk]))
            payout = payouts[attempt.payout_id]
            if (
                mapping is None
                or mapping.decision == ErrorDecision.TREAT_AS_UNKNOWN
                or attempt.status != AttemptStatus.PROCESSING
                or payout.status != PayoutStatus.PROCESSING
            ):
                out.rest.append(attempt.pk)
                continue
            batch.append((attempt, mapping))
        if not batch:
            return out
        resolved_at = timezone.now()
        groups: dict[tuple[str, str, str], list[int]] = {}
        for attempt, mapping in batch:
            groups.setdefault((mapping.unified_code, code_of[attempt.pk], mapping.decision), []).append(attempt.pk)
        for (unified, channel_code, decision), pks in groups.items():
            fsm_update_exactly(
                PayoutAttempt.objects.filter(pk__in=pks),
                PayoutAttempt.mark_failed,
                failure_code=unified,
                channel_code=channel_code,
                decision=decision,
                resolved_at=resolved_at,
                resolved_by="submit",
                next_query_at=None,
                expected=len(pks),
            )
        retry_candidates = [
            payouts[a.payout_id]
            for a, m in batch
            if m.decision in (ErrorDecision.FAILOVER, ErrorDecision.RETRY_SAME_CHANNEL)
            and payouts[a.payout_id].attempt_count < settings.DISBURSEMENT_MAX_ATTEMPTS
        ]
        retry: set[int] = set()
        if retry_candidates:
            inputs = routing_inputs(now=now)
            history: dict[int, list[PayoutAttempt]] = {}
            for attempt in PayoutAttempt.objects.filter(payout_id__in=[p.pk for p in retry_candidates]):
                history.setdefault(attempt.payout_id, []).append(attempt)
            retry = {
                p.pk
                for p in retry_candidates
                if not route_payout(payout=p, attempts=history[p.pk], now=now, inputs=inputs).impossible
            }
        by_outcome: dict[tuple[bool, str], list[int]] = {}
        for attempt, mapping in batch:
            by_outcome.setdefault((attempt.payout_id in retry, mapping.unified_code), []).append(attempt.payout_id)
        for (again, unified), pks in by_outcome.items():
            fsm_update_exactly(
                Payout.objects.filter(pk__in=pks, funds_out=True),
                Payout.await_retry if again else Payout.mark_failed,
                failure_code=unified,
                version=F("version") + 1,
                funds_out=False,
                updated_at=resolved_at,
                expected=len(pks),
            )
        _post_returned(batch, payouts, retry, business_date=business_date_current())
        final_ids = [a.payout_id for a, _ in batch if a.payout_id not in retry]
        events_schedule_delivery(event_ids=payout_events_insert(event_type="payout.failed", payout_ids=final_ids))
        for advance_id in sorted({payouts[pk].advance_id for pk in retry}):
            transaction.on_commit(lambda advance_id=advance_id: advance_schedule_dispatch(advance_id=advance_id))
        out.final_advance_ids = {payouts[pk].advance_id for pk in final_ids}
        out.changed = len(batch)
    for attempt, _ in batch:
        metrics.payout_attempt(attempt.channel.code, AttemptStatus.FAILED)
    return out


def _post_returned(
    batch: list[tuple[PayoutAttempt, ChannelErrorMapping]], payouts: dict[int, Payout], retry: set[int], *,
    business_date,
) -> None:
    """Funds of explicitly failed attempts come back (postings.payout_post_returned, set-based): Dr payouts in
    transit / Cr settlement (own part), Cr advance receivable (bank part). Before a retry the line's hold and the
    own funds' hold are taken again; after a final failure the line's outstanding is reduced."""
    keys: set[tuple[str, str]] = set()
    for attempt, _ in batch:
        company = payouts[attempt.payout_id].advance.company.code
        keys |= {(AccountKind.SETTLEMENT, company), (AccountKind.ADVANCE_RECEIVABLE, company),
                 (AccountKind.PAYOUTS_IN_TRANSIT, attempt.channel.code)}
        ensure_channel_accounts(attempt.channel.code)
    accounts = lock_accounts(keys, currency=payouts[batch[0][0].payout_id].advance.currency)
    lines = sorted({payouts[a.payout_id].advance.credit_line_id for a, _ in batch})
    list(CreditLine.objects.select_for_update(no_key=True).filter(pk__in=lines).order_by("pk").values_list("pk"))
    postings = []
    release: dict[int, Decimal] = {}
    rehold: dict[str, Decimal] = {}
    for attempt, _ in batch:
        payout = payouts[attempt.payout_id]
        company = payout.advance.company.code
        postings.append(returned_posting(
            payout=payout, serial=attempt.serial, channel_code=attempt.channel.code,
            in_transit=accounts[(AccountKind.PAYOUTS_IN_TRANSIT, attempt.channel.code)],
            settlement=accounts[(AccountKind.SETTLEMENT, company)],
            receivable=accounts[(AccountKind.ADVANCE_RECEIVABLE, company)], business_date=business_date,
        ))
        line = payout.advance.credit_line_id
        if payout.pk in retry:
            # The line's part never left `reserved` (contract 1.7): only the own funds are held again.
            rehold[company] = rehold.get(company, Decimal("0")) + payout.own_funds_amount
        else:
            release[line] = release.get(line, Decimal("0")) + payout.advanced_amount
    ledger_post_many(postings=postings)
    for line, amount in sorted(release.items()):
        line_release(line_id=line, amount=amount)
    for company, amount in sorted(rehold.items()):
        # The credits just posted make room for exactly these holds, under the same row locks.
        if not account_hold(account=accounts[(AccountKind.SETTLEMENT, company)], amount=amount):
            raise PostingError(f"could not re-hold {amount} of own funds of {company} for retries")


def _apply_succeeded_batch(
    attempt_ids: list[int], source: str, now: datetime, *, queried: bool = False
) -> list[tuple[str, int]]:
    with transaction.atomic():
        # Lock order as everywhere: payouts, then attempts (each in id order), then the accounts.
        # Only what the set-based path reads: a thousand payouts are not a thousand advances and companies.
        payouts = {
            p.pk: p
            for p in Payout.objects.select_for_update(of=("self",))
            .only("id", "public_id", "status", "advance_id", "amount", "advanced_amount")
            .filter(attempts__pk__in=attempt_ids)
            .order_by("pk")
        }
        attempts = list(
            PayoutAttempt.objects.select_for_update(of=("self",))
            .only("id", "payout_id", "channel_id", "serial", "status", "fee")
            .filter(pk__in=attempt_ids)
            .order_by("pk")
        )
        codes = channel_codes({a.channel_id for a in attempts})
        live = [a for a in attempts if a.status in LIVE]  # a resolved attempt is left as it is
        # Every attempt asked records the query, as attempt_apply does, whatever becomes of it below.
        query_recorded = {"query_count": F("query_count") + 1, "last_query": "succeeded"} if queried else {}
        done: list[tuple[str, int]] = []
        batch: list[PayoutAttempt] = []
        for attempt in live:
            payout = payouts[attempt.payout_id]
            if payout.status in (PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN):
                batch.append(attempt)
            else:  # manual review (its review closes with it): the single-payout path, same transaction
                _resolve_succeeded(
                    Payout.objects.select_related("advance__company").get(pk=payout.pk),
                    PayoutAttempt.objects.select_related("channel").get(pk=attempt.pk),
                    source=source,
                    now=now,
                )
            done.append((codes[attempt.channel_id], payout.advance_id))
        in_batch = {a.pk for a in batch}
        if query_recorded and len(in_batch) < len(attempts):  # those the move below does not write
            PayoutAttempt.objects.filter(pk__in=[a.pk for a in attempts if a.pk not in in_batch]).update(
                **query_recorded
            )
        if not batch:
            return done
        resolved_at = timezone.now()
        fsm_update_exactly(
            PayoutAttempt.objects.filter(pk__in=in_batch),
            PayoutAttempt.mark_succeeded,
            resolved_at=resolved_at,
            resolved_by=source,
            next_query_at=None,
            expected=len(batch),
            **query_recorded,
        )
        payout_ids = [a.payout_id for a in batch]
        fsm_update_exactly(
            Payout.objects.filter(pk__in=payout_ids),
            Payout.mark_succeeded,
            failure_code="",
            version=F("version") + 1,
            updated_at=resolved_at,
            expected=len(batch),
        )
        # The events before the shared rows: the channel's accounts and the credit lines (which the API's
        # reservations need) stay locked only for the postings, the draws and the COMMIT.
        events_schedule_delivery(event_ids=payout_events_insert(event_type="payout.succeeded", payout_ids=payout_ids))
        lines = dict(Advance.objects.filter(pk__in={payouts[a.payout_id].advance_id for a in batch})
                     .values_list("pk", "credit_line_id"))
        _post_confirmed(batch, payouts, codes, business_date=business_date_current())
        # The outcomes are known: each line's part is drawn (reserved -> outstanding), lines in id order.
        drawn: dict[int, Decimal] = {}
        for attempt in batch:
            payout = payouts[attempt.payout_id]
            line = lines[payout.advance_id]
            drawn[line] = drawn.get(line, Decimal("0")) + payout.advanced_amount
        for line, amount in sorted(drawn.items()):
            line_draw(line_id=line, amount=amount)
    return done


def _post_confirmed(
    batch: list[PayoutAttempt], payouts: dict[int, Payout], codes: dict[int, str], *, business_date
) -> None:
    """Confirmation and channel fee of every attempt (postings.confirmed_posting, one journal each, one INSERT for
    all). Channel accounts are in the engine's currency (postings.channel_account)."""
    used = {codes[a.channel_id] for a in batch}
    for code in used:
        ensure_channel_accounts(code)
    accounts = lock_accounts(
        {(AccountKind.CHANNEL_COST, "")}
        | {(kind, code) for code in used for kind in (AccountKind.PAYOUTS_IN_TRANSIT, AccountKind.CHANNEL_CLEARING)},
        currency=settings.ENGINE_CURRENCY,
    )
    cost = accounts[(AccountKind.CHANNEL_COST, "")]
    ledger_post_many(postings=[
        confirmed_posting(
            payout=payouts[attempt.payout_id], serial=attempt.serial, fee=attempt.fee,
            channel_code=codes[attempt.channel_id],
            in_transit=accounts[(AccountKind.PAYOUTS_IN_TRANSIT, codes[attempt.channel_id])],
            clearing=accounts[(AccountKind.CHANNEL_CLEARING, codes[attempt.channel_id])], cost=cost,
            business_date=business_date,
        )
        for attempt in batch
    ])
