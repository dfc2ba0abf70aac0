"""Returns (退汇, contract 1.7): a payout that succeeded and is sent back later by the beneficiary's bank.

Booking a return, in one transaction: the payout `succeeded -> returned` (event `payout.returned`), the advance's
amounts, fee and version (funding.services.returns, event `advance.payout_returned`), one balanced journal, the
line's outstanding lowered by the principal still owed, and, when part of the returned principal (or of a
reduced fee) had already been repaid, a `refund` row on the company's repayments. The journal:

    Dr channel clearing (the channel sends the money back)       amount
    Dr fee income                                                fee given back (fee recomputed)
        Cr settlement account   own-funds part + principal already repaid + fee already repaid
        Cr advance receivable   principal still owed
        Cr fee receivable       fee given back, not yet repaid

Booked by the channel statement import (reconciliation.statement_import, a `returned` line) or by staff under
four eyes (payout_return_propose / payout_return_approve). One return per payout (a unique constraint), so
importing the same statement again, or a staff proposal for a payout the statement already returned, books
nothing twice.

Lock order: the payout, the company's settlement account, the advance, then the accounts the posting touches
and the credit line: the settlement account before the advance, as the repayment collection takes them.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, NotFound, ValidationFailed
from funding.models import Advance, Payout, PayoutStatus
from funding.selectors import BANK_RETURN_KIND
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from funding.services.line_counters import line_reduce_outstanding
from funding.services.postings import company_account
from funding.services.returns import advance_apply_payout_return
from ledger.models import AccountKind
from ledger.services import account_get_or_create, accounts_lock, credit, debit, ledger_post
from settlement.models import (
    AttemptStatus,
    ChannelStatement,
    PayoutAttempt,
    PayoutReturn,
    PayoutReturnRequest,
    PayoutReturnRequestStatus,
    Repayment,
    RepaymentAllocation,
    RepaymentSource,
    ReturnSource,
)
from settlement.services.disbursement.common import emit_payout_event, retrying


@dataclass(frozen=True)
class Booked:
    payout_return: PayoutReturn
    created: bool  # False: the payout had already been returned (nothing changed)


def payout_return_book(
    *,
    payout_id: int,
    source: str,
    actor_label: str,
    statement: ChannelStatement | None = None,
    request: PayoutReturnRequest | None = None,
) -> Booked:
    """Book the return of a succeeded payout. Idempotent: a returned payout is left as it is.

    Raises InvalidState when the payout is neither succeeded nor returned. Runs in its own transaction
    (retried on a deadlock) or inside the caller's.
    """
    if connection.in_atomic_block:
        return _book(payout_id, source, actor_label, statement, request)
    return retrying(lambda: _book_atomic(payout_id, source, actor_label, statement, request))


def _book_atomic(payout_id, source, actor_label, statement, request) -> Booked:
    with transaction.atomic():
        return _book(payout_id, source, actor_label, statement, request)


def _book(payout_id, source, actor_label, statement, request) -> Booked:
    with transaction.atomic():
        payout = Payout.objects.select_for_update(of=("self",)).select_related("advance__company").get(pk=payout_id)
        existing = PayoutReturn.objects.filter(payout=payout).first()
        if existing is not None:
            return Booked(existing, False)
        if payout.status != PayoutStatus.SUCCEEDED:
            raise InvalidState(f"The payout is {payout.status}; only a succeeded payout can be returned.")
        attempt = (
            PayoutAttempt.objects.select_related("channel")
            .filter(payout=payout, status=AttemptStatus.SUCCEEDED)
            .first()
        )
        if attempt is None:  # the one-live-attempt index allows at most one
            raise InvalidState(f"The payout {payout.public_id} has no succeeded attempt to return.")
        company = payout.advance.company
        business_date = business_date_current()
        settlement = company_account(advance=payout.advance, kind=AccountKind.SETTLEMENT)
        # The settlement account before the advance: the repayment collection's order.
        accounts_lock(settlement)
        advance = Advance.objects.select_for_update().select_related("company").get(pk=payout.advance_id)
        payout.advance = advance

        payout.mark_returned()
        payout.funds_out = False
        payout.version += 1
        payout.save(update_fields=["status", "funds_out", "version", "updated_at"])
        effect = advance_apply_payout_return(
            advance=advance, payout=payout, business_date=business_date, actor_label=actor_label
        )
        journal = ledger_post(
            kind=BANK_RETURN_KIND,
            reference=f"{attempt.serial}:bank_return",
            business_date=business_date,
            description=f"payout {payout.public_id} returned through {attempt.channel.code}",
            legs=[
                debit(account_get_or_create(kind=AccountKind.CHANNEL_CLEARING, owner=attempt.channel.code),
                      effect.amount),
                debit(account_get_or_create(kind=AccountKind.FEE_INCOME), effect.fee_reduced),
                credit(settlement, effect.own_funds + effect.refund),
                credit(company_account(advance=advance, kind=AccountKind.ADVANCE_RECEIVABLE),
                       effect.principal_released),
                credit(company_account(advance=advance, kind=AccountKind.FEE_RECEIVABLE),
                       effect.fee_receivable_released),
            ],
        )
        line_reduce_outstanding(line_id=advance.credit_line_id, amount=effect.principal_released)
        booked = PayoutReturn.objects.create(
            payout=payout,
            attempt=attempt,
            channel=attempt.channel,
            business_date=business_date,
            source=source,
            amount=effect.amount,
            own_funds=effect.own_funds,
            principal_released=effect.principal_released,
            principal_refunded=effect.principal_refunded,
            fee_before=effect.fee_before,
            fee_after=effect.fee_after,
            fee_refunded=effect.fee_refunded,
            journal=journal,
            statement=statement,
            request=request,
        )
        if effect.refund > 0:
            refund = Repayment.objects.create(
                reference=f"refund:{payout.public_id}",
                company=company,
                business_date=business_date,
                source=RepaymentSource.REFUND,
                currency=advance.currency,
                amount=effect.refund,
                fee=effect.fee_refunded,
                principal=effect.principal_refunded,
                journal=journal,
            )
            RepaymentAllocation.objects.create(
                repayment=refund, advance=advance, fee=effect.fee_refunded, principal=effect.principal_refunded
            )
        audit_record(
            action="payout.returned",
            obj=payout,
            actor_label=actor_label,
            company=company,
            before={"status": "succeeded"},
            after={"status": "returned", "source": source, "attempt": attempt.serial, **effect.as_dict()},
        )
        emit_payout_event(payout, "payout.returned")
        if request is None:
            _close_pending_requests(payout, actor_label=actor_label, source=source)
    return Booked(booked, True)


def _close_pending_requests(payout: Payout, *, actor_label: str, source: str) -> None:
    """A staff proposal to return this payout, still pending when the channel's statement booked the return,
    is closed (rejected, decided by nobody: the statement decided), so it does not wait for a checker forever."""
    for pending in PayoutReturnRequest.objects.select_for_update().filter(
        payout=payout, status=PayoutReturnRequestStatus.PROPOSED
    ):
        pending.reject()
        pending.decided_at = timezone.now()
        pending.decision_reason = f"the return was booked by {actor_label} ({source})"
        pending.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_record(action="payout.return.superseded", obj=payout, actor_label=actor_label,
                     company=payout.advance.company, after={"request": pending.pk, "source": source},
                     reason=pending.decision_reason)


# Staff: four eyes ------------------------------------------------------------------------------------------


def payout_return_propose(*, payout_public_id: str, reason: str, maker: AbstractBaseUser) -> PayoutReturnRequest:
    """The maker states that the beneficiary's bank sent a succeeded payout back, and why (its advice)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(of=("self",))
            .select_related("advance__company")
            .filter(public_id=payout_public_id)
            .first()
        )
        if payout is None:
            raise NotFound()
        if payout.status != PayoutStatus.SUCCEEDED:
            raise InvalidState(f"The payout is {payout.status}; only a succeeded payout can be returned.")
        if PayoutReturnRequest.objects.filter(payout=payout, status=PayoutReturnRequestStatus.PROPOSED).exists():
            raise DuplicatePendingRequest("A return of this payout is already awaiting a checker.")
        request = PayoutReturnRequest.objects.create(payout=payout, reason=reason, proposed_by=maker)
        audit_record(
            action="payout.return.proposed",
            obj=payout,
            actor=maker,
            company=payout.advance.company,
            after={"request": request.pk, "amount": f"{payout.amount:.2f}"},
            reason=reason,
        )
    return request


def _locked_request(request_id: int) -> PayoutReturnRequest:
    """The payout first, then the request: the order of booking a return."""
    payout_id = PayoutReturnRequest.objects.filter(pk=request_id).values_list("payout_id", flat=True).first()
    if payout_id is None:
        raise NotFound()
    list(Payout.objects.select_for_update().filter(pk=payout_id).values_list("pk"))
    return (
        PayoutReturnRequest.objects.select_for_update(of=("self",))
        .select_related("payout__advance__company", "proposed_by")
        .get(pk=request_id)
    )


def payout_return_approve(*, request_id: int, checker: AbstractBaseUser, reason: str = "") -> PayoutReturn:
    """A second staff member confirms: the return is booked in this same transaction."""
    with transaction.atomic():
        request = _locked_request(request_id)
        if request.status != PayoutReturnRequestStatus.PROPOSED:
            raise InvalidState(f"The request is {request.status}; only a proposed return can be approved.")
        if request.proposed_by_id == checker.pk:
            raise FourEyesViolation("The proposer of a return cannot approve or reject it.")
        if request.payout.status != PayoutStatus.SUCCEEDED:
            raise InvalidState(f"The payout is already {request.payout.status}.")
        request.approve()
        request.decided_by = checker
        request.decided_at = timezone.now()
        request.decision_reason = (reason or "").strip()
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        booked = payout_return_book(
            payout_id=request.payout_id,
            source=ReturnSource.STAFF,
            actor_label=checker.get_username(),
            request=request,
        ).payout_return
        audit_record(
            action="payout.return.approved",
            obj=request.payout,
            actor=checker,
            company=request.payout.advance.company,
            before={"status": "succeeded"},
            after={"status": "returned", "maker": request.proposed_by.get_username(),
                   "checker": checker.get_username(), "request": request.pk, "refund": f"{booked.refund:.2f}"},
            reason=request.decision_reason or request.reason,
        )
    return booked


def payout_return_reject(*, request_id: int, checker: AbstractBaseUser, reason: str) -> PayoutReturnRequest:
    """The checker disagrees: nothing is booked; the maker may propose again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        request = _locked_request(request_id)
        if request.status != PayoutReturnRequestStatus.PROPOSED:
            raise InvalidState(f"The request is {request.status}; only a proposed return can be rejected.")
        if request.proposed_by_id == checker.pk:
            raise FourEyesViolation("The proposer of a return cannot approve or reject it.")
        request.reject()
        request.decided_by = checker
        request.decided_at = timezone.now()
        request.decision_reason = reason
        request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        audit_record(
            action="payout.return.rejected",
            obj=request.payout,
            actor=checker,
            company=request.payout.advance.company,
            after={"maker": request.proposed_by.get_username(), "checker": checker.get_username(),
                   "request": request.pk},
            reason=reason,
        )
    return request
