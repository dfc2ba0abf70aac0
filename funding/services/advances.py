"""Advance requests: validate, use the company's own funds first, hold the credit line last, commit once."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from config.ops.metrics import count_advance_requests
from funding.errors import (
    BusinessDayClosed,
    CreditLineFrozen,
    CreditLineInactive,
    DuplicateExternalId,
    InsufficientLimit,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from funding.models import Advance, AdvanceStatus, Company, CreditLine, CreditLineStatus
from funding.representations import amount_str
from funding.services.audit import audit_record
from funding.services.calendar import next_business_day
from funding.services.line_counters import line_hold, line_release
from ledger.models import Account, AccountKind
from ledger.money import MAX_AMOUNT, money
from ledger.services import account_release_hold

MAX_PAYOUTS = 1000


@dataclass(frozen=True)
class PayoutInput:
    external_id: str
    beneficiary_name: str
    account_no: str
    bank_code: str
    amount: Decimal


def _split_own_funds(payouts: list[PayoutInput], own: Decimal) -> list[tuple[Decimal, Decimal]]:
    """Own funds pay the first payouts in order; the credit line funds the rest."""
    split = []
    remaining = own
    for payout in payouts:
        own_part = min(payout.amount, remaining)
        remaining -= own_part
        split.append((own_part, payout.amount - own_part))
    return split


@count_advance_requests
def advance_request(
    *,
    company: Company,
    external_id: str,
    amount: Decimal,
    payouts: list[PayoutInput],
    use_own_funds: bool = True,
    currency: str = "CNY",
) -> Advance:
    """Create an advance in `reserved`, its payouts in `pending`, and hold the limit. All or nothing.

    Raises a funding.errors.EngineError on rejection; a rejection leaves every balance and counter as it was.
    """
    from settlement.models import Payout

    if currency != settings.ENGINE_CURRENCY:
        raise ValidationFailed(details={"currency": [f"Only {settings.ENGINE_CURRENCY} is supported."]})
    _validate_input(external_id, amount, payouts)
    amount = money(amount)

    try:
        with transaction.atomic():
            # One read of the business day, FOR SHARE until COMMIT: end of day cannot begin under us.
            business_date = _share_lock_business_day()
            line = (
                CreditLine.objects.filter(company=company, status__in=[
                    CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED,
                ]).first()
            )
            _refuse_unless_active(line, business_date)
            due_date = next_business_day(business_date)
            # No pre-check for a duplicate external_id: the unique constraint answers it (IntegrityError below).
            own = _hold_settlement_funds(company=company, wanted=amount) if use_own_funds else Decimal("0.00")
            advanced = amount - own
            advance = Advance.objects.create(
                company=company,
                credit_line=line,
                external_id=external_id,
                currency=currency,
                amount=amount,
                own_funds_amount=own,
                advanced_amount=advanced,
                daily_fee_rate=line.daily_fee_rate,
                business_date=business_date,
                due_date=due_date,
            )
            created_payouts = Payout.objects.bulk_create(
                [
                    Payout(
                        advance=advance,
                        sequence=index,
                        external_id=p.external_id,
                        beneficiary_name=p.beneficiary_name,
                        account_no=p.account_no,
                        bank_code=p.bank_code,
                        amount=money(p.amount),
                        own_funds_amount=own_part,
                        advanced_amount=advanced_part,
                    )
                    for index, (p, (own_part, advanced_part)) in enumerate(
                        zip(payouts, _split_own_funds(payouts, own), strict=True), start=1
                    )
                ]
            )
            # Hold last: the line's row stays locked only from here to COMMIT.
            if not line_hold(line_id=line.pk, amount=advanced):
                _raise_hold_refused(line.pk, advanced)
    except IntegrityError as exc:
        if "funding_advance_external_id_unique" in str(exc):
            raise DuplicateExternalId() from exc
        raise
    # The response can be built from these (they have no attempts yet) instead of reading them back.
    advance.created_payouts = created_payouts
    transaction.on_commit(lambda: _schedule_dispatch(advance.pk))
    return advance


def _amount_errors(value: Decimal) -> list[str]:
    if not isinstance(value, Decimal) or not value.is_finite():
        return ["Not an amount."]
    if value <= 0:
        return ["Must be greater than zero."]
    if value > MAX_AMOUNT:
        return [f"Must not exceed {MAX_AMOUNT}."]
    if money(value) != value:
        return ["At most 2 fraction digits."]
    return []


# Column lengths: longer text would reach PostgreSQL as a DataError.
TEXT_LIMITS = {"external_id": 64, "beneficiary_name": 100, "account_no": 32, "bank_code": 16}


def _text_errors(value: object, limit: int) -> list[str]:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return ["Must be non-empty text."]
    return [f"At most {limit} characters."] if len(value) > limit else []


def _validate_input(external_id: str, amount: Decimal, payouts: list[PayoutInput]) -> None:
    """The service refuses bad input itself, so that no caller can reach a column limit or a CHECK (a 5xx)."""
    errors: dict[str, list[str]] = {}
    if problems := _text_errors(external_id, TEXT_LIMITS["external_id"]):
        errors["external_id"] = problems
    for index, payout in enumerate(payouts):
        for field, limit in TEXT_LIMITS.items():
            if problems := _text_errors(getattr(payout, field), limit):
                errors[f"payouts.{index}.{field}"] = problems
    if problems := _amount_errors(amount):
        errors["amount"] = problems
    if not 1 <= len(payouts) <= MAX_PAYOUTS:
        errors["payouts"] = [f"Between 1 and {MAX_PAYOUTS} payouts."]
    for index, payout in enumerate(payouts):
        if problems := _amount_errors(payout.amount):
            errors[f"payouts.{index}.amount"] = problems
    seen: set[str] = set()
    for index, payout in enumerate(payouts):
        if payout.external_id in seen:
            errors[f"payouts.{index}.external_id"] = ["Payout external_ids must be unique in the advance."]
        seen.add(payout.external_id)
    if not errors and sum((p.amount for p in payouts), Decimal(0)) != amount:
        errors["payouts"] = ["The payout amounts must add up exactly to amount."]
    if errors:
        raise ValidationFailed(details=errors)


def _share_lock_business_day():
    """Read the business day FOR SHARE (held until COMMIT) and refuse if it is closing; returns its date.

    Requests share the lock (they never wait for each other); the end-of-day job's UPDATE (closing, or the
    next date) waits until every request in flight has committed, and requests arriving after it see the
    new row. Without it, an advance could commit on a date whose end of day had already begun.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT current, closing FROM funding_businessday WHERE singleton FOR SHARE")
        row = cursor.fetchone()
    if row is None or row[1]:
        raise BusinessDayClosed()
    return row[0]


def _hold_settlement_funds(*, company: Company, wanted: Decimal) -> Decimal:
    """Hold up to `wanted` of the company's own settlement balance with one UPDATE; returns what it held."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH target AS (
                SELECT id, LEAST(%s, credits_posted - debits_posted - debits_pending) AS take
                  FROM ledger_account
                 WHERE kind = %s AND owner = %s AND currency = %s
                   AND credits_posted - debits_posted - debits_pending > 0
                 FOR NO KEY UPDATE
            )
            UPDATE ledger_account a SET debits_pending = a.debits_pending + t.take
              FROM target t WHERE a.id = t.id
            RETURNING t.take
            """,
            [wanted, AccountKind.SETTLEMENT, company.code, settings.ENGINE_CURRENCY],
        )
        row = cursor.fetchone()
    return money(row[0]) if row else Decimal("0.00")


def _refuse_unless_active(line: CreditLine | None, business_date) -> None:
    if line is None:
        raise CreditLineInactive()
    if line.status == CreditLineStatus.FROZEN:
        raise CreditLineFrozen()
    if line.status != CreditLineStatus.ACTIVE or not (line.valid_from <= business_date <= line.valid_to):
        raise CreditLineInactive()


def _raise_hold_refused(line_id: int, requested: Decimal) -> None:
    line = CreditLine.objects.get(pk=line_id)
    if line.status == CreditLineStatus.FROZEN:
        raise CreditLineFrozen()
    if line.status != CreditLineStatus.ACTIVE:
        raise CreditLineInactive()
    raise InsufficientLimit(
        details={"available": amount_str(line.available), "requested": amount_str(requested)}
    )


def _schedule_dispatch(advance_id: int) -> None:
    from settlement.services.dispatch import advance_schedule_dispatch

    advance_schedule_dispatch(advance_id=advance_id)


def advance_cancel(*, company: Company, public_id: str, actor_label: str) -> Advance:
    """Cancel an advance none of whose payouts has been handed to a channel; release its holds."""
    from settlement.models import Payout, PayoutStatus

    with transaction.atomic():
        advance = Advance.objects.select_for_update().filter(company=company, public_id=public_id).first()
        if advance is None:
            raise NotFound()
        if advance.status != AdvanceStatus.RESERVED:
            raise InvalidState(f"The advance is {advance.status}; only a reserved advance can be cancelled.")
        payouts = list(Payout.objects.select_for_update().filter(advance=advance).order_by("sequence"))
        if any(p.status != PayoutStatus.PENDING or p.attempt_count for p in payouts):
            raise InvalidState("A payout of this advance has already been handed to a channel.")
        for payout in payouts:
            payout.cancel()
            payout.version += 1
        Payout.objects.bulk_update(payouts, ["status", "version"])
        advance.cancel()
        advance.version += 1
        advance.save(update_fields=["status", "version", "updated_at"])
        if advance.own_funds_amount:
            settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code,
                                             currency=advance.currency)
            account_release_hold(account=settlement, amount=advance.own_funds_amount)
        line_release(line_id=advance.credit_line_id, amount=advance.advanced_amount)
        audit_record(action="advance.cancelled", obj=advance, actor_label=actor_label, company=company,
                     before={"status": "reserved"}, after={"status": "cancelled"})
    return advance


def advance_fee(*, advanced_disbursed: Decimal, daily_fee_rate: Decimal, business_date, due_date) -> Decimal:
    """advanced_disbursed x daily_fee_rate x calendar days from business_date to due_date, half-up to 0.01."""
    days = (due_date - business_date).days
    return money(advanced_disbursed * daily_fee_rate * days)


def advance_finish_disbursement(*, advance_id: int, business_date) -> Advance | None:
    """Once every payout is final: set the disbursed amounts, charge the fee, move the advance's FSM.

    Returns None (and changes nothing) while a payout is still open. Safe to call again.
    """
    from settlement.models import FINAL_PAYOUT_STATES, Payout, PayoutStatus
    from settlement.services.postings import advance_post_fee

    with transaction.atomic():
        advance = Advance.objects.select_for_update().select_related("company").get(pk=advance_id)
        if advance.status != AdvanceStatus.DISBURSING:
            return None
        payouts = list(Payout.objects.filter(advance=advance))
        if any(p.status not in FINAL_PAYOUT_STATES for p in payouts):
            return None
        succeeded = [p for p in payouts if p.status == PayoutStatus.SUCCEEDED]
        advance.disbursed_amount = sum((p.amount for p in succeeded), Decimal("0.00"))
        advance.advanced_disbursed = sum((p.advanced_amount for p in succeeded), Decimal("0.00"))
        advance.fee = advance_fee(
            advanced_disbursed=advance.advanced_disbursed,
            daily_fee_rate=advance.daily_fee_rate,
            business_date=advance.business_date,
            due_date=advance.due_date,
        )
        if len(succeeded) == len(payouts):
            advance.mark_disbursed()
        elif succeeded:
            advance.mark_partially_disbursed()
        else:
            advance.mark_failed()
        advance.version += 1
        advance.save(update_fields=["status", "disbursed_amount", "advanced_disbursed", "fee", "version",
                                    "updated_at"])
        advance_post_fee(advance=advance, fee=advance.fee, business_date=business_date)
        audit_record(action=f"advance.{advance.status}", obj=advance, actor_label="disbursement",
                     company=advance.company, before={"status": "disbursing"},
                     after={"status": advance.status, "fee": amount_str(advance.fee)})
        from funding.representations import advance_representation
        from funding.services.events import event_emit

        event_emit(company=advance.company, type=f"advance.{advance.status}", resource_type="advance",
                   resource_id=advance.public_id, version=advance.version,
                   data=advance_representation(advance))
    return advance
