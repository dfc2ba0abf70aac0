"""Step 1: claim a due pending payout, route it, write its attempt and post its funds out, in one transaction
that commits BEFORE the channel is called (a crash after the call can never forget the call)."""


from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from funding.models import ADVANCE_OPEN_PAYOUT_STATES, Advance, AdvanceStatus, Payout, PayoutStatus
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from ledger.models import Account, AccountKind
from settlement.models import AttemptStatus, PayoutAttempt
from settlement.services.channels import channel_fee
from settlement.services.disbursement.common import (
    LIVE,
    emit_payout_event,
    lock_money_rows,
    next_query_time,
    retrying,
    route_payout,
)
from settlement.services.postings import (
    payout_post_funds_out,
    payout_release_unsent,
)


@dataclass
class Claim:
    attempt_id: int | None = None
    finished_payout: bool = False  # a payout became final without an attempt


def payout_claim_next(*, advance_id: int, now: datetime | None = None) -> Claim | None:
    """Claim one due pending payout of the advance and commit its attempt. None: nothing left to claim."""
    now = now or timezone.now()
    return retrying(lambda: _claim_next(advance_id, now))


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
        # An overdue advance may still have a payout to send: a retry after an explicit failure of a payout whose
        # outcome was unknown when the succeeded ones' part fell due (contract 1.7).
        if advance is None or advance.status not in ADVANCE_OPEN_PAYOUT_STATES:
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
        lock_money_rows(payout, channel)
        payout_post_funds_out(
            payout=payout, channel=channel, serial=attempt.serial, business_date=business_date
        )
        payout.save(
            update_fields=["status", "attempt_count", "dispatch_after", "version", "funds_out", "value_date",
                           "updated_at"]
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
    emit_payout_event(payout, "payout.failed")
    audit_record(
        action="payout.failed",
        obj=payout,
        actor_label="disbursement",
        company=payout.advance.company,
        after={"status": "failed", "failure_code": code},
    )
