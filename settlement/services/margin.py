"""Margin (保证金) set-off under four eyes (issue 13 part 6).

A company's margin deposit is held at the bank in its margin account (a liability, funded through the bank
statement import like the settlement account). When the company is overdue, staff may apply part of the
deposit to the overdue debt: a maker proposes (company, amount, reason), a different staff member approves.
On approval, in one transaction, the amount is collected exactly like a repayment (the one allocation and
booking of settlement.services.repayments): the company's overdue advances oldest first, within each penalty,
then fee, then principal; one journal transaction Dr margin deposit / Cr penalty, fee and advance
receivables; a Repayment (source `margin_setoff`) with its allocation rows, shown to the company on
GET /api/v1/repayments; the advances' new versions (`advance.repaid` for each paid in full, which leaves
`overdue`); the credit line's outstanding lowered (available rises) and, when its limit has a margin factor,
its effective limit recomputed from the smaller deposit at once. Every refusal (amount above the margin
balance or the overdue debt, nothing overdue, the day closing, four eyes, decided already) changes nothing:
the proposal stays pending and may be approved later or rejected.
"""

from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from funding.errors import BusinessDayClosed, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import Advance, AdvanceStatus, BusinessDay, Company
from funding.services.audit import audit_record
from funding.services.calendar import BUSINESS_DAY_LOCK, business_date_current
from funding.services.limits import credit_line_margin_fell
from ledger.models import Account, AccountKind
from ledger.money import MAX_AMOUNT, money
from settlement.errors import AmountExceedsOverdue, InsufficientMargin, NothingOverdue
from settlement.models import MarginSetOff, MarginSetOffStatus, RepaymentSource
from settlement.services.repayments import repayments_allocate, repayments_book

ZERO = Decimal("0.00")
# The advances a set-off pays: overdue ones only (what is merely due today is the settlement account's to pay).
SETOFF_STATES = [AdvanceStatus.OVERDUE]


def margin_available(*, company: Company) -> Decimal:
    """The margin deposit the company holds at the bank (balance less any hold), never below 0.00."""
    account = Account.objects.filter(
        kind=AccountKind.MARGIN, owner=company.code, currency=settings.ENGINE_CURRENCY
    ).first()
    return max(account.available, ZERO) if account is not None else ZERO


def margin_overdue_total(*, company: Company, business_date: date | None = None) -> Decimal:
    """What the company owes on its overdue advances: penalty, fee and principal not yet repaid, as the
    set-off's allocation reads it (advances_due(), the collection's one definition of what is due)."""
    business_date = business_date or business_date_current()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT coalesce(sum(d.pen_due + d.fee_due + d.prin_due), 0)
              FROM advances_due(ARRAY[%s]::bigint[], %s, %s::date) d JOIN funding_advance v ON v.id = d.id
             WHERE v.status = ANY(%s)
            """,
            [company.pk, settings.ENGINE_CURRENCY, business_date, [str(s) for s in SETOFF_STATES]],
        )
        return money(cursor.fetchone()[0])


def _amount(value: Decimal | str) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationFailed(details={"amount": ["Not a number."]}) from exc
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or money(amount) != amount:
        raise ValidationFailed(details={"amount": ["A positive amount with at most 2 decimals."]})
    return money(amount)


def _check(*, amount: Decimal, margin: Decimal, overdue: Decimal) -> None:
    details = {"amount": str(amount), "margin_available": str(margin), "overdue": str(overdue)}
    if overdue <= 0:
        raise NothingOverdue(details=details)
    if amount > overdue:
        raise AmountExceedsOverdue(details=details)
    if amount > margin:
        raise InsufficientMargin(details=details)


def margin_setoff_validate(*, company: Company, amount: Decimal | str) -> tuple[Decimal, Decimal, Decimal]:
    """Could `amount` of the company's margin be set off now? Returns (amount, margin available, overdue) or
    raises the refusal. A read: the approval checks again under locks."""
    amount = _amount(amount)
    margin, overdue = margin_available(company=company), margin_overdue_total(company=company)
    _check(amount=amount, margin=margin, overdue=overdue)
    return amount, margin, overdue


def margin_setoff_propose(
    *, company: Company, amount: Decimal | str, maker: AbstractBaseUser, reason: str
) -> MarginSetOff:
    """A maker proposes setting `amount` of the company's margin off against its overdue debt. Checked now (the
    checker sees a set-off that can be applied) and again, under locks, when approved."""
    amount = _amount(amount)
    if not (reason or "").strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    amount, margin, overdue = margin_setoff_validate(company=company, amount=amount)
    with transaction.atomic():
        setoff = MarginSetOff.objects.create(
            company=company, amount=amount, currency=settings.ENGINE_CURRENCY, maker=maker, maker_reason=reason,
            margin_balance_at_proposal=margin, overdue_at_proposal=overdue,
        )
        audit_record(
            action="margin_setoff.proposed", obj=setoff, actor=maker, company=company, reason=reason,
            after={"amount": str(amount), "margin_available": str(margin), "overdue": str(overdue)},
        )
    return setoff


def _lock_pending(setoff: MarginSetOff, checker: AbstractBaseUser) -> MarginSetOff:
    setoff = MarginSetOff.objects.select_for_update(of=("self",)).select_related("company", "maker").get(
        pk=setoff.pk
    )
    if setoff.maker_id == checker.pk:
        raise FourEyesViolation("The proposer of a margin set-off cannot approve or reject it.")
    if setoff.status != MarginSetOffStatus.PENDING:
        raise InvalidState(f"Margin set-off #{setoff.pk} is already {setoff.status}.")
    return setoff


def margin_setoff_approve(*, setoff: MarginSetOff, checker: AbstractBaseUser, reason: str = "") -> MarginSetOff:
    """A different staff member approves: the amount is collected from the margin account at once, like a
    repayment. All or nothing: any refusal leaves every balance, advance, line and the proposal unchanged."""
    currency = settings.ENGINE_CURRENCY
    with transaction.atomic(), connection.cursor() as cursor:
        setoff = _lock_pending(setoff, checker)
        company = setoff.company
        # The day is open for as long as this transaction runs (end of day waits; see BUSINESS_DAY_LOCK).
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", list(BUSINESS_DAY_LOCK))
        day = BusinessDay.objects.first()
        if day is not None and day.closing:
            raise BusinessDayClosed()
        business_date = business_date_current()
        # The company's settlement and margin accounts, in id order like the collection (which locks the
        # settlement account before reading the advances): the two never take from the same advances at once.
        cursor.execute(
            """
            SELECT kind, greatest(credits_posted - debits_posted - debits_pending, 0) FROM ledger_account
             WHERE owner = %s AND currency = %s AND kind IN ('settlement', 'margin')
             ORDER BY id FOR NO KEY UPDATE
            """,
            [company.code, currency],
        )
        margin = money(dict(cursor.fetchall()).get(AccountKind.MARGIN.value, ZERO))
        list(Advance.objects.select_for_update().filter(company=company, status__in=SETOFF_STATES)
             .order_by("id").values_list("id", flat=True))
        overdue = margin_overdue_total(company=company, business_date=business_date)
        _check(amount=setoff.amount, margin=margin, overdue=overdue)

        repayments_allocate(
            cursor=cursor, available={company.pk: setoff.amount}, states=[str(s) for s in SETOFF_STATES],
            business_date=business_date, currency=currency,
        )
        cursor.execute("SELECT coalesce(sum(penalty + fee + principal), 0) FROM nightly_alloc")
        allocated = cursor.fetchone()[0]
        if allocated != setoff.amount:  # the overdue total above and the allocation disagree: never book it
            raise AmountExceedsOverdue(details={"amount": str(setoff.amount), "overdue": str(allocated)})
        maker = setoff.maker
        totals = repayments_book(
            cursor=cursor,
            business_date=business_date,
            source=RepaymentSource.MARGIN_SETOFF,
            reference_for=lambda c: f"margin_setoff:{setoff.pk}",
            description_for=lambda c: f"margin set-off #{setoff.pk} from {c.code} margin deposit",
            actor=checker,
            audit_action="repayment.margin_setoff",
            audit_extra={"margin_setoff": setoff.pk, "maker": maker.get_username(),
                         "checker": checker.get_username()},
        )
        if len(totals.repayments) != 1 or totals.amount != setoff.amount:
            raise RuntimeError(f"margin set-off #{setoff.pk} booked {totals.amount}, expected {setoff.amount}")
        # The deposit no longer backs the limit: a margin factor is recomputed now, not at end of day.
        limits = credit_line_margin_fell(company_id=company.pk, business_date=business_date,
                                         actor_label=checker.get_username())

        setoff.mark_approved()
        setoff.checker, setoff.checker_reason, setoff.decided_at = checker, reason, timezone.now()
        setoff.repayment_id, setoff.business_date = totals.repayments[0], business_date
        setoff.save(update_fields=["status", "checker", "checker_reason", "decided_at", "repayment",
                                   "business_date"])
        audit_record(
            action="margin_setoff.approved", obj=setoff, actor=checker, company=company, reason=reason,
            before={"status": MarginSetOffStatus.PENDING.value, "margin_available": str(margin),
                    "overdue": str(overdue)},
            after={"status": MarginSetOffStatus.APPROVED.value, "maker": maker.get_username(),
                   "checker": checker.get_username(), "amount": str(setoff.amount), "penalty": str(totals.penalty),
                   "fee": str(totals.fee), "principal": str(totals.principal),
                   "advances_repaid": totals.advances_repaid, "repayment": totals.repayments[0],
                   **({"effective_limit": str(limits[1])} if limits else {})},
        )
    return setoff


def margin_setoff_reject(*, setoff: MarginSetOff, checker: AbstractBaseUser, reason: str) -> MarginSetOff:
    if not (reason or "").strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        setoff = _lock_pending(setoff, checker)
        setoff.mark_rejected()
        setoff.checker, setoff.checker_reason, setoff.decided_at = checker, reason, timezone.now()
        setoff.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(
            action="margin_setoff.rejected", obj=setoff, actor=checker, company=setoff.company, reason=reason,
            before={"status": MarginSetOffStatus.PENDING.value},
            after={"status": MarginSetOffStatus.REJECTED.value, "maker": setoff.maker.get_username(),
                   "checker": checker.get_username()},
        )
    return setoff
