"""Advance requests: validate, use the company's own funds first, hold the credit line last, commit once."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.db import prepared_cursor
from config.ops.metrics import count_advance_requests
from funding.errors import (
    BusinessDayClosed,
    CompanySuspended,
    CreditLineFrozen,
    CreditLineInactive,
    DuplicateExternalId,
    InsufficientLimit,
    InvalidState,
    NotFound,
    OutsideChannelHours,
    ValidationFailed,
)
from funding.models import (
    ADVANCE_CLEARABLE_STATES,
    ADVANCE_COLLECTABLE_STATES,
    ADVANCE_REPAYABLE_STATES,
    FINAL_PAYOUT_STATES,
    Advance,
    AdvanceStatus,
    Company,
    Payout,
    PayoutStatus,
    new_advance_id,
    new_payout_id,
)
from funding.representations import amount_str
from funding.services.audit import audit_record
from funding.services.calendar import calendar_unavailable
from funding.services.events import advance_events_insert, events_schedule_delivery
from funding.services.line_counters import line_release
from funding.services.postings import advance_post_fee
from funding.services.thresholds import credit_line_thresholds_emit
from funding.signals import advance_reserved
from ledger.models import Account, AccountKind, JournalTransaction
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
    if currency != settings.ENGINE_CURRENCY:
        raise ValidationFailed(details={"currency": [f"Only {settings.ENGINE_CURRENCY} is supported."]})
    _validate_input(external_id, amount, payouts)
    amount = money(amount)
    payout_amounts = [money(p.amount) for p in payouts]
    public_id = new_advance_id()
    payout_ids = [new_payout_id() for _ in payouts]
    created_at = timezone.now()

    # One round trip: the day's lock (shared), the business date, the company's and the line's state, the due
    # date, the channels' capacity, own funds held first, the advance and its payouts inserted, the line held
    # last (funding/sql/advance_reserve.py). A refusal comes back as a code with every hold of the call undone.
    # savepoint=False: inside the API's transaction this adds no statement; alone, it makes one transaction of
    # the advance and the threshold events it may cause.
    with transaction.atomic(savepoint=False):
        with prepared_cursor() as cursor:
            cursor.execute(
                "SELECT * FROM advance_reserve(%s::bigint, %s::text, %s::text, %s::text, %s::text, %s::text,"
                " %s::numeric, %s::boolean, %s::timestamptz, %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::numeric[])",
                [
                    company.pk, company.code, AccountKind.SETTLEMENT, currency, public_id, external_id, amount,
                    use_own_funds, created_at, payout_ids, [p.external_id for p in payouts],
                    [p.beneficiary_name for p in payouts], [p.account_no for p in payouts],
                    [p.bank_code for p in payouts], payout_amounts,
                ],
            )
            (code, advance_id, line_id, business_date, due_date, own, own_parts, daily_fee_rate, available,
             requested, first_missing, daily_remaining, unpayable, thresholds) = cursor.fetchone()
        if thresholds:  # rare: the hold made utilisation reach a threshold first today (already marked)
            credit_line_thresholds_emit(line_id=line_id, thresholds=thresholds)
    if code != "ok":
        _raise_refusal(code, available=available, requested=requested, daily_remaining=daily_remaining,
                       business_date=business_date, first_missing=first_missing, unpayable=unpayable,
                       payouts=payouts)
    own = money(own)
    advance = _as_loaded(Advance, {
        "id": advance_id, "public_id": public_id, "company_id": company.pk, "credit_line_id": line_id,
        "external_id": external_id, "status": AdvanceStatus.RESERVED, "currency": currency, "amount": amount,
        "own_funds_amount": own, "advanced_amount": amount - own, "daily_fee_rate": daily_fee_rate,
        "business_date": business_date, "due_date": due_date, "created_at": created_at, "updated_at": created_at,
    })
    Advance.company.field.set_cached_value(advance, company)
    created_payouts = []
    # Own funds paid the first payouts in order (the split advance_reserve() wrote); the line funds the rest.
    for index, (p, payout_amount, own_part) in enumerate(zip(payouts, payout_amounts, own_parts, strict=True), 1):
        payout = _as_loaded(Payout, {
            "public_id": payout_ids[index - 1], "advance_id": advance_id, "sequence": index,
            "external_id": p.external_id, "beneficiary_name": p.beneficiary_name, "account_no": p.account_no,
            "bank_code": p.bank_code, "amount": payout_amount, "own_funds_amount": money(own_part),
            "advanced_amount": payout_amount - money(own_part), "created_at": created_at, "updated_at": created_at,
        })
        Payout.advance.field.set_cached_value(payout, advance)
        created_payouts.append(payout)
    # The response is built from these (no attempts exist yet) instead of reading them back.
    advance.created_payouts = created_payouts
    advance_reserved.send(sender=Advance, advance=advance)
    return advance


def _as_loaded(model, values: dict):
    """An instance of a row just written, built the way a queryset builds one (positionally, which costs a
    fraction of keyword construction); columns not given take their model defaults, as the INSERT did."""
    return model.from_db(
        connection.alias,
        None,
        [values[f.attname] if f.attname in values else f.get_default() for f in model._meta.concrete_fields],
    )


def _raise_refusal(code: str, *, available, requested: Decimal, daily_remaining, business_date, first_missing,
                   unpayable, payouts: list[PayoutInput]) -> None:
    if code == "insufficient_limit":
        details = {"available": amount_str(money(available)), "requested": amount_str(money(requested))}
        if daily_remaining is not None:  # the daily cap decided (contract 1.7)
            details["daily_remaining"] = amount_str(money(daily_remaining))
        raise InsufficientLimit(details=details)
    if code == "calendar_unavailable":
        raise calendar_unavailable(day=business_date, first_missing=first_missing)
    if code == "outside_channel_hours":
        raise OutsideChannelHours(details={
            f"payouts.{index}.amount": [
                f"No channel can pay {amount_str(money(payouts[index].amount))} to {payouts[index].bank_code} "
                f"on the business date {business_date.isoformat()}: above every open channel's limit or after "
                "their cut-off."
            ]
            for index in unpayable
        })
    refusals = {
        "company_suspended": CompanySuspended,
        "business_day_closed": BusinessDayClosed,
        "credit_line_inactive": CreditLineInactive,
        "credit_line_frozen": CreditLineFrozen,
        "duplicate_external_id": DuplicateExternalId,
    }
    raise refusals[code]()


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


def advance_cancel(*, company: Company, public_id: str, actor_label: str) -> Advance:
    """Cancel an advance none of whose payouts has been handed to a channel; release its holds."""
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
        # Cancelled advances do not count against the daily cap (contract 1.7).
        line_release(line_id=advance.credit_line_id, amount=advance.advanced_amount,
                     advanced_on=advance.business_date)
        audit_record(action="advance.cancelled", obj=advance, actor_label=actor_label, company=company,
                     before={"status": "reserved"}, after={"status": "cancelled"})
    return advance


def advance_fee_of_payouts(*, payouts: list[Payout], daily_fee_rate: Decimal, business_date, due_date) -> Decimal:
    """The fee of the succeeded payouts' line parts, each for the calendar days from its value date (the
    business date its funds left the bank) to due_date (contract 1.7), rounded half-up to 0.01 once.

    A payout without a value date left on the advance's business date (rows older than value dates); one that
    left on or after the due date is charged no day.
    """
    total = sum(
        (p.advanced_amount * max((due_date - (p.value_date or business_date)).days, 0) for p in payouts),
        Decimal("0"),
    )
    return money(total * daily_fee_rate)


def advance_finish_disbursement(*, advance_id: int, business_date) -> Advance | None:
    """Take the known payout outcomes into the advance: its disbursed amounts and fee (posted as it grows),
    and once every payout is final the FSM's move out of `disbursing`.

    Contract 1.7, "due for what actually left the bank": while one payout is still `unknown` or in
    `manual_review`, what the succeeded ones paid (and its fee) is already owed, due on the due date, collected
    and made overdue like any other advance; a payout that succeeds later adds its part (due at the next
    collection: penalty accrues only from the close that finds it unpaid). The line's counters follow the payouts
    themselves (a success draws its hold, a final failure releases it), not this step.

    Returns None (and changes nothing) when nothing new is known. Safe to call again.
    """
    with transaction.atomic():
        advance = Advance.objects.select_related("company").get(pk=advance_id)
        if advance.status not in (AdvanceStatus.DISBURSING, AdvanceStatus.OVERDUE):
            return None
        if advance.due_date <= business_date:
            # A repayment pass may take money for this advance now: it locks the company's receivables (its
            # posting) before the advances (its UPDATE). Take the fee receivable first too, or each waits for
            # the other's row.
            list(Account.objects.select_for_update(no_key=True).filter(
                kind=AccountKind.FEE_RECEIVABLE, owner=advance.company.code, currency=advance.currency
            ).values_list("pk"))
        advance = Advance.objects.select_for_update().select_related("company").get(pk=advance_id)
        if advance.status not in (AdvanceStatus.DISBURSING, AdvanceStatus.OVERDUE):
            return None
        payouts = list(Payout.objects.filter(advance=advance))
        final = all(p.status in FINAL_PAYOUT_STATES for p in payouts)
        succeeded = [p for p in payouts if p.status == PayoutStatus.SUCCEEDED]
        disbursed_amount = sum((p.amount for p in succeeded), Decimal("0.00"))
        advanced_disbursed = sum((p.advanced_amount for p in succeeded), Decimal("0.00"))
        fee = advance_fee_of_payouts(
            payouts=succeeded,
            daily_fee_rate=advance.daily_fee_rate,
            business_date=advance.business_date,
            due_date=advance.due_date,
        )
        fee = max(fee, advance.fee)  # see fee_added below
        moves = final and advance.status == AdvanceStatus.DISBURSING
        if not moves and (disbursed_amount, advanced_disbursed, fee) == (
            advance.disbursed_amount, advance.advanced_disbursed, advance.fee
        ):
            return None
        before = {"status": advance.status}
        if not moves:
            before.update(disbursed_amount=amount_str(advance.disbursed_amount), fee=amount_str(advance.fee))
        # The fee only grows here, as more payouts succeed (each rounded once, half-up). A return lowers it, with
        # its own posting (funding.services.returns); after the due date a return keeps the fee as charged, so a
        # recomputation over the payouts still succeeded may come out lower: the charged fee then stays, and the
        # stored fee never leaves what the fee receivable was posted.
        fee_added = fee - advance.fee
        # Whether the `<advance>:fee` journal exists, not whether a fee is stored: a return can bring the stored
        # fee back to 0.00 after that journal was posted.
        first_fee = not JournalTransaction.objects.filter(reference=f"{advance.public_id}:fee").exists()
        advance.disbursed_amount = disbursed_amount
        advance.advanced_disbursed = advanced_disbursed
        advance.fee = fee
        if moves:
            if len(succeeded) == len(payouts):
                advance.mark_disbursed()
            elif succeeded:
                advance.mark_partially_disbursed()
            else:
                advance.mark_failed()
        advance.version += 1
        advance.save(update_fields=["status", "disbursed_amount", "advanced_disbursed", "fee", "version",
                                    "updated_at"])
        # One fee posting when the advance settles at once (the usual case); a partly settled advance posts its
        # fee as each part becomes known (references :fee, then :fee:v<version>).
        advance_post_fee(advance=advance, fee=fee_added, business_date=business_date,
                         reference=None if first_fee else f"{advance.public_id}:fee:v{advance.version}")
        after = {"status": advance.status, "fee": amount_str(advance.fee)}
        if not moves:
            after["disbursed_amount"] = amount_str(advance.disbursed_amount)
        action = f"advance.{advance.status}" if moves else "advance.settled_in_part"
        audit_record(action=action, obj=advance, actor_label="disbursement", company=advance.company,
                     before=before, after=after)
        if moves:
            # Rendered by the database (ADVANCE_DATA_SQL, the representation's fields): an advance of a thousand
            # payouts is not read back row by row.
            events_schedule_delivery(event_ids=advance_events_insert(
                event_type=f"advance.{advance.status}", ids_sql="SELECT %(advance_id)s::bigint",
                params={"advance_id": advance.pk}))
    return advance


def advances_apply_repayments(*, allocations_sql: str, params: dict | None = None) -> int:
    """Apply repayment allocations to their advances, set-based; an advance paid in full becomes `repaid`
    (one `advance.repaid` event each). Runs inside the repayment's transaction.

    `allocations_sql` is a query returning (advance_id, penalty, fee, principal, settles, clears), one row per
    advance: `clears` when everything owed is paid, `settles` when besides no payout of the advance is still
    open (advance_disbursement_open_sql). An overdue advance that clears without settling (a payout's outcome
    still unknown) goes back to `disbursing` (clear_overdue); one that settles becomes `repaid` (mark_repaid).
    Returns the number of advances updated; raises if it differs from the allocations (a concurrent change).
    """
    states = [str(s) for s in ADVANCE_COLLECTABLE_STATES]
    columns = "(advance_id, penalty, fee, principal, settles, clears)"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({allocations_sql}) n", params or {})
        expected = cursor.fetchone()[0]
        # Set-based transitions disbursed|partially_disbursed|overdue -> repaid (the FSM's mark_repaid sources)
        # and overdue -> disbursing (clear_overdue's source); a disbursing advance only takes its allocation.
        cursor.execute(
            f"""
            UPDATE funding_advance v
               SET penalty_repaid = v.penalty_repaid + n.penalty,
                   fee_repaid = v.fee_repaid + n.fee,
                   principal_repaid = v.principal_repaid + n.principal,
                   status = CASE WHEN n.settles AND v.status = ANY(%(repayable)s) THEN %(repaid)s
                                 WHEN n.clears AND v.status = ANY(%(clearable)s) THEN %(disbursing)s
                                 ELSE v.status END,
                   aging_bucket = CASE WHEN n.clears THEN '' ELSE v.aging_bucket END,
                   version = v.version + 1,
                   updated_at = now()
              FROM ({allocations_sql}) n {columns}
             WHERE v.id = n.advance_id AND v.status = ANY(%(states)s)
               AND (NOT n.settles OR v.status = ANY(%(repayable)s))
            """,
            {**(params or {}), "repaid": AdvanceStatus.REPAID.value, "disbursing": AdvanceStatus.DISBURSING.value,
             "states": states, "repayable": [str(s) for s in ADVANCE_REPAYABLE_STATES],
             "clearable": [str(s) for s in ADVANCE_CLEARABLE_STATES]},
        )
        updated = cursor.rowcount
    if updated != expected:
        raise RepaymentConflict(f"{updated} advances updated, {expected} allocated: a concurrent change")
    advance_events_insert(
        event_type="advance.repaid",
        ids_sql=f"SELECT n.advance_id FROM ({allocations_sql}) n {columns} WHERE n.settles",
        params=params or {},
    )
    return updated


class RepaymentConflict(Exception):
    """Allocations and the advances they apply to disagree: a concurrent change, never a business outcome."""
