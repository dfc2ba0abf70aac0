"""advance_request, advance_cancel, advance_fee_of_payouts, advance_finish_disbursement on PostgreSQL: exact values."""

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest

from funding.errors import (
    BusinessDayClosed,
    CalendarUnavailable,
    CreditLineFrozen,
    CreditLineInactive,
    DuplicateExternalId,
    InsufficientLimit,
    InvalidState,
    ValidationFailed,
)
from funding.models import Advance, AdvanceStatus, AuditEvent, BusinessDay, CreditLine, Payout, PayoutStatus
from funding.services.advances import (
    advance_cancel,
    advance_fee_of_payouts,
    advance_finish_disbursement,
    advance_request,
)
from funding.services.calendar import calendar_seed_year
from funding.services.credit_lines import company_create, credit_line_freeze, credit_line_suspend
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from tests.factories import company_with_line, payout_inputs, staff_user
from tests.money_helpers import (
    advance_start_disbursing,
    money_snapshot,
    payout_abandon,
    payout_resolve,
    payout_send,
    settlement_deposit,
)

pytestmark = pytest.mark.django_db

D = Decimal


def _settlement(company) -> Account:
    return Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)


def _set_business_date(day: date) -> None:
    BusinessDay.objects.update(current=day)


def test_own_funds_first_then_the_line(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="300.00", business_date=date(2026, 11, 25))

    advance = advance_request(company=company, external_id="ORD-1", amount=D("1000.00"),
                              payouts=payout_inputs("200.00", "300.00", "500.00"))

    assert (advance.status, advance.amount, advance.own_funds_amount, advance.advanced_amount) == (
        AdvanceStatus.RESERVED, D("1000.00"), D("300.00"), D("700.00"))
    assert (advance.business_date, advance.due_date) == (date(2026, 11, 25), date(2026, 11, 26))
    assert advance.daily_fee_rate == D("0.000300")
    payouts = list(Payout.objects.filter(advance=advance).order_by("sequence"))
    assert [(p.sequence, p.status, p.amount, p.own_funds_amount, p.advanced_amount) for p in payouts] == [
        (1, PayoutStatus.PENDING, D("200.00"), D("200.00"), D("0.00")),
        (2, PayoutStatus.PENDING, D("300.00"), D("100.00"), D("200.00")),
        (3, PayoutStatus.PENDING, D("500.00"), D("0.00"), D("500.00")),
    ]
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.available) == (D("700.00"), D("0.00"), D("300.00"))
    settlement = _settlement(company)
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("300.00"), D("0.00"), D("300.00"))
    assert settlement.available == D("0.00")


def test_use_own_funds_false_takes_everything_from_the_line(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="300.00", business_date=date(2026, 11, 25))

    advance = advance_request(company=company, external_id="ORD-1", amount=D("400.00"),
                              payouts=payout_inputs("400.00"), use_own_funds=False)

    assert (advance.own_funds_amount, advance.advanced_amount) == (D("0.00"), D("400.00"))
    line.refresh_from_db()
    assert line.reserved == D("400.00")
    assert _settlement(company).debits_pending == D("0.00")


def test_own_funds_cover_everything_and_hold_nothing_on_the_line(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="5000.00", business_date=date(2026, 11, 25))

    advance = advance_request(company=company, external_id="ORD-1", amount=D("4000.00"),
                              payouts=payout_inputs("4000.00"))

    assert (advance.own_funds_amount, advance.advanced_amount) == (D("4000.00"), D("0.00"))
    line.refresh_from_db()
    assert line.reserved == D("0.00")
    assert _settlement(company).available == D("1000.00")


def _assert_rejected(exc_type, code, **kwargs):
    before = money_snapshot()
    with pytest.raises(exc_type) as info:
        advance_request(**kwargs)
    assert info.value.code == code
    assert money_snapshot() == before
    return info.value


def test_refusal_after_own_funds_were_held_undoes_the_hold_and_names_the_line_part(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="250.00", business_date=date(2026, 11, 25))

    # 250.00 of own funds would pay first; the line is asked for the other 1,000.01 and refuses.
    error = _assert_rejected(InsufficientLimit, "insufficient_limit", company=company, external_id="ORD-1",
                             amount=D("1250.01"), payouts=payout_inputs("1000.00", "250.01"))
    assert error.details == {"available": "1000.00", "requested": "1000.01"}
    assert _settlement(company).debits_pending == D("0.00")
    line.refresh_from_db()
    assert line.reserved == D("0.00")


def test_insufficient_limit_changes_nothing(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="100.00", business_date=date(2026, 11, 25))
    advance_request(company=company, external_id="ORD-1", amount=D("600.00"), payouts=payout_inputs("600.00"))

    # 100.00 own funds were held and 500.00 of the line: 500.00 left, 500.01 asked for.
    error = _assert_rejected(InsufficientLimit, "insufficient_limit", company=company, external_id="ORD-2",
                             amount=D("500.01"), payouts=payout_inputs("500.01"))
    assert error.details == {"available": "500.00", "requested": "500.01"}
    line.refresh_from_db()
    assert line.reserved == D("500.00")
    assert _settlement(company).debits_pending == D("100.00")

    # Exactly the available amount is accepted.
    advance = advance_request(company=company, external_id="ORD-3", amount=D("500.00"),
                              payouts=payout_inputs("500.00"))
    line.refresh_from_db()
    assert (advance.advanced_amount, line.reserved, line.available) == (D("500.00"), D("1000.00"), D("0.00"))


def test_rejected_request_releases_the_own_funds_it_tried_to_hold(business_day):
    company, line = company_with_line(limit="100.00")
    settlement_deposit(company=company, amount="50.00", business_date=date(2026, 11, 25))
    _assert_rejected(InsufficientLimit, "insufficient_limit", company=company, external_id="ORD-1",
                     amount=D("150.01"), payouts=payout_inputs("150.01"))
    assert _settlement(company).debits_pending == D("0.00")


def test_frozen_line_refuses(business_day):
    company, line = company_with_line()
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="overdue")
    _assert_rejected(CreditLineFrozen, "credit_line_frozen", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_suspended_line_refuses(business_day):
    company, line = company_with_line()
    credit_line_suspend(credit_line=line, actor=staff_user(), reason="review")
    _assert_rejected(CreditLineInactive, "credit_line_inactive", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_company_without_line_refuses(business_day):
    company = company_create(code="NOLINE", legal_name="No Line Co.", settlement_account_no="3100999")
    _assert_rejected(CreditLineInactive, "credit_line_inactive", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_line_outside_its_validity_refuses(business_day):
    company, line = company_with_line(valid_from="2026-12-01", valid_to="2027-06-30")
    _assert_rejected(CreditLineInactive, "credit_line_inactive", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_closing_business_day_refuses(business_day):
    company, line = company_with_line()
    BusinessDay.objects.update(closing=True)
    _assert_rejected(BusinessDayClosed, "business_day_closed", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_duplicate_external_id_refuses_and_changes_nothing(business_day):
    company, line = company_with_line()
    first = advance_request(company=company, external_id="ORD-1", amount=D("10.00"),
                            payouts=payout_inputs("10.00"))
    _assert_rejected(DuplicateExternalId, "duplicate_external_id", company=company, external_id="ORD-1",
                     amount=D("20.00"), payouts=payout_inputs("20.00"))
    line.refresh_from_db()
    assert line.reserved == first.advanced_amount == D("10.00")


def test_same_external_id_of_another_company_is_fine(business_day):
    company_a, _ = company_with_line()
    company_b, _ = company_with_line()
    advance_request(company=company_a, external_id="ORD-1", amount=D("10.00"), payouts=payout_inputs("10.00"))
    advance_request(company=company_b, external_id="ORD-1", amount=D("10.00"), payouts=payout_inputs("10.00"))


def test_unpublished_calendar_refuses(business_day):
    # The next business day after 2026-12-31 lies in 2027, which chinese-calendar 1.11 does not publish.
    _set_business_date(date(2026, 12, 31))
    company, line = company_with_line()
    error = _assert_rejected(CalendarUnavailable, "calendar_unavailable", company=company,
                             external_id="ORD-1", amount=D("10.00"), payouts=payout_inputs("10.00"))
    assert "2027" in error.message


@pytest.mark.parametrize(
    ("amount", "payouts"),
    [
        ("10.00", ["5.00", "4.99"]),
        ("10.00", []),
        ("10.00", ["10.00", "0.00"]),
        ("10.00", ["11.00", "-1.00"]),
        ("10.005", ["10.005"]),
        ("10.00", ["5.005", "4.995"]),
        ("10000000000000.00", ["10000000000000.00"]),
    ],
)
def test_payouts_that_do_not_add_up_or_are_not_positive_are_refused(business_day, amount, payouts):
    company, line = company_with_line()
    _assert_rejected(ValidationFailed, "validation_error", company=company, external_id="ORD-1",
                     amount=D(amount), payouts=payout_inputs(*payouts))


def test_duplicate_payout_external_ids_are_refused(business_day):
    company, line = company_with_line()
    payouts = payout_inputs("5.00", "5.00")
    payouts[1] = payouts[1].__class__(**{**payouts[1].__dict__, "external_id": payouts[0].external_id})
    error = _assert_rejected(ValidationFailed, "validation_error", company=company, external_id="ORD-1",
                             amount=D("10.00"), payouts=payouts)
    assert list(error.details) == ["payouts.1.external_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("external_id", "X" * 65), ("external_id", ""), ("beneficiary_name", "B" * 101),
     ("account_no", "1" * 33), ("bank_code", "C" * 17), ("beneficiary_name", "nul\x00byte")],
)
def test_over_long_or_empty_text_is_refused(business_day, field, value):
    company, line = company_with_line()
    payouts = payout_inputs("10.00")
    external_id = "ORD-1"
    if field == "external_id":
        external_id = value
    else:
        payouts = [payouts[0].__class__(**{**payouts[0].__dict__, field: value})]
    error = _assert_rejected(ValidationFailed, "validation_error", company=company, external_id=external_id,
                             amount=D("10.00"), payouts=payouts)
    assert list(error.details) == [field if field == "external_id" else f"payouts.0.{field}"]


def test_non_positive_amount_is_refused(business_day):
    company, line = company_with_line()
    _assert_rejected(ValidationFailed, "validation_error", company=company, external_id="ORD-1",
                     amount=D("0.00"), payouts=payout_inputs("0.00"))


def test_other_currency_is_refused(business_day):
    company, line = company_with_line()
    _assert_rejected(ValidationFailed, "validation_error", company=company, external_id="ORD-1",
                     amount=D("10.00"), payouts=payout_inputs("10.00"), currency="USD")


def test_cancel_releases_both_holds(business_day):
    company, line = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="300.00", business_date=date(2026, 11, 25))
    advance = advance_request(company=company, external_id="ORD-1", amount=D("1000.00"),
                              payouts=payout_inputs("400.00", "600.00"))

    cancelled = advance_cancel(company=company, public_id=advance.public_id, actor_label="key_1")

    assert (cancelled.status, cancelled.version) == (AdvanceStatus.CANCELLED, 2)
    statuses = set(Payout.objects.filter(advance=advance).values_list("status", flat=True))
    assert statuses == {PayoutStatus.CANCELLED}
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.limit_ceiling) == (D("0.00"), D("0.00"), D("1000.00"))
    assert _settlement(company).debits_pending == D("0.00")
    audit = AuditEvent.objects.get(action="advance.cancelled")
    assert (audit.actor_label, audit.object_id, audit.before, audit.after) == (
        "key_1", advance.public_id, {"status": "reserved"}, {"status": "cancelled"})
    assert JournalTransaction.objects.filter(kind__startswith="payout").count() == 0

    before = money_snapshot()
    with pytest.raises(InvalidState):
        advance_cancel(company=company, public_id=advance.public_id, actor_label="key_1")
    assert money_snapshot() == before


def test_cancel_of_an_advance_being_disbursed_is_refused(business_day):
    company, line = company_with_line()
    advance = advance_request(company=company, external_id="ORD-1", amount=D("10.00"),
                              payouts=payout_inputs("10.00"))
    advance_start_disbursing(advance=advance)
    before = money_snapshot()
    with pytest.raises(InvalidState):
        advance_cancel(company=company, public_id=advance.public_id, actor_label="key_1")
    assert money_snapshot() == before


def test_cancel_of_another_companys_advance_is_not_found(business_day):
    company, _ = company_with_line()
    other, _ = company_with_line()
    advance = advance_request(company=company, external_id="ORD-1", amount=D("10.00"),
                              payouts=payout_inputs("10.00"))
    from funding.errors import NotFound

    with pytest.raises(NotFound):
        advance_cancel(company=other, public_id=advance.public_id, actor_label="key_2")


# --- fees and due dates from the public calendar ---------------------------------------------------------

def _advance_on(day: date, amount: str = "10000.00", rate: str = "0.000300"):
    _set_business_date(day)
    company, line = company_with_line(daily_fee_rate=rate)
    return advance_request(company=company, external_id=f"ORD-{day}", amount=D(amount),
                           payouts=payout_inputs(amount))


@pytest.mark.parametrize(
    ("day", "due", "days"),
    [
        (date(2026, 11, 25), date(2026, 11, 26), 1),  # Wednesday -> Thursday
        (date(2026, 11, 27), date(2026, 11, 30), 3),  # Friday -> Monday
        (date(2026, 9, 30), date(2026, 10, 8), 8),  # before National Day (10-01..10-07)
        (date(2026, 10, 9), date(2026, 10, 10), 1),  # Friday -> make-up working Saturday (调休)
        (date(2026, 10, 10), date(2026, 10, 12), 2),  # make-up Saturday -> Monday
        (date(2026, 2, 13), date(2026, 2, 14), 1),  # Friday -> make-up Saturday before Spring Festival
        (date(2026, 2, 14), date(2026, 2, 24), 10),  # Spring Festival 02-15..02-23
    ],
)
def test_due_date_and_fee_follow_the_public_calendar(business_day, day, due, days):
    advance = _advance_on(day)
    assert advance.due_date == due
    fee = advance_fee_of_payouts(payouts=list(advance.payouts.all()), daily_fee_rate=advance.daily_fee_rate,
                                 business_date=advance.business_date, due_date=advance.due_date)
    assert fee == D("3.00") * days  # 10000.00 x 0.0003 = 3.00 a day


def test_exchange_calendar_treats_make_up_saturdays_as_closed(business_day, settings):
    settings.BUSINESS_CALENDAR = "exchange"
    calendar_seed_year(year=2026)
    advance = _advance_on(date(2026, 10, 9))
    assert advance.due_date == date(2026, 10, 12)


def test_fee_rounds_half_up_to_the_fen():
    # 1000.00 x 0.000305 x 1 = 0.305: half-up gives 0.31 (banker's rounding would give 0.30).
    def fee(line_part: str, rate: str, business_date: date, due_date: date) -> D:
        paid = SimpleNamespace(advanced_amount=D(line_part), value_date=None)
        return advance_fee_of_payouts(payouts=[paid], daily_fee_rate=D(rate), business_date=business_date,
                                      due_date=due_date)

    assert fee("1000.00", "0.000305", date(2026, 11, 25), date(2026, 11, 26)) == D("0.31")
    assert fee("1234.56", "0.000300", date(2026, 11, 27), date(2026, 11, 30)) == D("1.11")
    assert fee("0.00", "0.000300", date(2026, 11, 27), date(2026, 11, 30)) == D("0.00")


# --- disbursement outcome: fee on the advanced part actually paid -----------------------------------------

def test_finish_disbursement_charges_the_fee_on_what_was_advanced_and_paid(business_day):
    _set_business_date(date(2026, 11, 27))  # Friday: 3 days to Monday
    company, line = company_with_line(limit="10000.00")
    settlement_deposit(company=company, amount="1000.00", business_date=date(2026, 11, 27))
    advance = advance_request(company=company, external_id="ORD-1", amount=D("6000.00"),
                              payouts=payout_inputs("1000.00", "2000.00", "3000.00"))
    p1, p2, p3 = Payout.objects.filter(advance=advance).order_by("sequence")
    advance_start_disbursing(advance=advance)
    for payout in (p1, p2):
        payout_send(payout=payout, business_date=date(2026, 11, 27))
    line.refresh_from_db()
    # Sent, outcome not yet known: the line's parts stay reserved (contract 1.7).
    assert (line.reserved, line.outstanding) == (D("5000.00"), D("0.00"))

    payout_resolve(payout=p1, outcome="succeeded", business_date=date(2026, 11, 27))
    payout_resolve(payout=p2, outcome="succeeded", business_date=date(2026, 11, 27))
    line.refresh_from_db()
    assert (line.reserved, line.outstanding) == (D("3000.00"), D("2000.00"))
    # p3 still open: the advance takes in what is known (due for what actually left) and stays disbursing.
    partly = advance_finish_disbursement(advance_id=advance.pk, business_date=date(2026, 11, 27))
    assert (partly.status, partly.advanced_disbursed, partly.fee) == (
        AdvanceStatus.DISBURSING, D("2000.00"), D("1.80"))
    assert advance_finish_disbursement(advance_id=advance.pk, business_date=date(2026, 11, 27)) is None
    payout_abandon(payout=p3)

    finished = advance_finish_disbursement(advance_id=advance.pk, business_date=date(2026, 11, 27))

    assert finished.status == AdvanceStatus.PARTIALLY_DISBURSED
    assert (finished.disbursed_amount, finished.advanced_disbursed) == (D("3000.00"), D("2000.00"))
    assert finished.fee == D("1.80")  # 2000.00 x 0.0003 x 3
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.limit_ceiling) == (D("0.00"), D("2000.00"), D("10000.00"))
    fee_receivable = Account.objects.get(kind=AccountKind.FEE_RECEIVABLE, owner=company.code)
    receivable = Account.objects.get(kind=AccountKind.ADVANCE_RECEIVABLE, owner=company.code)
    assert (fee_receivable.balance, receivable.balance) == (D("1.80"), D("2000.00"))
    assert _settlement(company).balance == D("0.00")
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []

    # Idempotent: a second call changes nothing.
    before = money_snapshot()
    assert advance_finish_disbursement(advance_id=advance.pk, business_date=date(2026, 11, 27)) is None
    assert money_snapshot() == before


def test_limit_cut_below_usage_blocks_new_holds_and_leaves_drawn_funds_alone(business_day):
    from funding.services.credit_lines import change_request_approve, change_request_propose

    company, line = company_with_line(limit="1000.00")
    advance = advance_request(company=company, external_id="ORD-1", amount=D("800.00"),
                              payouts=payout_inputs("300.00", "500.00"))
    p1, p2 = Payout.objects.filter(advance=advance).order_by("sequence")
    advance_start_disbursing(advance=advance)
    payout_send(payout=p1, business_date=date(2026, 11, 25))
    payout_resolve(payout=p1, outcome="succeeded", business_date=date(2026, 11, 25))

    maker, checker = staff_user(), staff_user()
    request = change_request_propose(credit_line=line, kind="change_terms",
                                     proposed={"approved_limit": "500.00"}, maker=maker, reason="risk review")
    change_request_approve(request=request, checker=checker, reason="agreed")
    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit, line.limit_ceiling) == (
        D("500.00"), D("500.00"), D("800.00"))
    assert (line.reserved, line.outstanding, line.available) == (D("500.00"), D("300.00"), D("0.00"))

    _assert_rejected(InsufficientLimit, "insufficient_limit", company=company, external_id="ORD-2",
                     amount=D("0.01"), payouts=payout_inputs("0.01"))

    # What is already held may still be sent (its outcome unknown, it stays reserved: contract 1.7); the ceiling
    # (CHECK bound) stays where usage is.
    payout_send(payout=p2, business_date=date(2026, 11, 25))
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.limit_ceiling) == (D("500.00"), D("300.00"), D("800.00"))
    # A final failure gives back 500.00: the ceiling falls back towards the limit, never below it.
    payout_resolve(payout=p2, outcome="failed", business_date=date(2026, 11, 25))
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.limit_ceiling) == (D("0.00"), D("300.00"), D("500.00"))
    _assert_rejected(InsufficientLimit, "insufficient_limit", company=company, external_id="ORD-3",
                     amount=D("200.01"), payouts=payout_inputs("200.01"))
    advance_request(company=company, external_id="ORD-4", amount=D("200.00"), payouts=payout_inputs("200.00"))
    line.refresh_from_db()
    assert (line.reserved, line.outstanding, line.available) == (D("200.00"), D("300.00"), D("0.00"))
    assert CreditLine.objects.get(pk=line.pk).limit_ceiling == D("500.00")


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_advance_and_payouts_it_returns_are_the_rows_as_read_back(business_day):
    """advance_request builds them from advance_reserve()'s row without Model.__init__ (funding.services.advances
    ._as_loaded): every column equal to the stored row, loaded state, and nothing that __init__'s signals would
    have done."""
    from django.db.models.signals import post_init, pre_init

    for model in (Advance, Payout):
        assert not pre_init.has_listeners(model) and not post_init.has_listeners(model), model
    company, _ = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="50.00", business_date=date(2026, 11, 25))
    advance = advance_request(company=company, external_id="LOADED", amount=Decimal("300.00"),
                              payouts=payout_inputs("100.00", "200.00"))

    assert _fields(advance) == _fields(Advance.objects.get(pk=advance.pk))
    assert [_fields(p) for p in advance.created_payouts] == [
        _fields(p) for p in Payout.objects.filter(advance=advance).order_by("sequence")
    ]
    assert advance.own_funds_amount == Decimal("50.00")
    for instance in (advance, *advance.created_payouts):
        assert (instance._state.adding, instance._state.db) == (False, "default")
    # The FSM still guards the state: a direct assignment is refused, a transition saves.
    with pytest.raises(AttributeError):
        advance.status = AdvanceStatus.DISBURSED
    advance_cancel(company=company, public_id=advance.public_id, actor_label="test")
    assert Advance.objects.get(pk=advance.pk).status == AdvanceStatus.CANCELLED


def test_with_a_finish_the_advance_is_rendered_before_its_statement_and_filled_in_after(business_day):
    """finish_with (the API's one-statement answer): the finisher sees the advance as it will be, Slots where
    advance_reserve() decides, and gets the decided values as text in slot order; the instances returned are the
    rows as read back."""
    from config.db import Finish, Gate, Slot

    company, _ = company_with_line(limit="1000.00")
    settlement_deposit(company=company, amount="50.00", business_date=date(2026, 11, 25))
    gate = Gate(ctes="opened AS (SELECT true AS open)", columns="(SELECT open FROM opened) AS open", params=[],
                width=1)
    seen = {}

    def finisher(advance, *, plainly, decided, decided_params):
        seen["rendered"] = (
            f"{advance.own_funds_amount:.2f}", f"{advance.advanced_amount:.2f}", advance.business_date.isoformat(),
            advance.due_date.isoformat(),
            [(f"{p.own_funds_amount:.2f}", f"{p.advanced_amount:.2f}") for p in advance.created_payouts],
        )
        seen["finish"] = Finish(sql=f"CASE WHEN {plainly} THEN array_to_string({decided}, ' ') END",
                                params=decided_params, declined="ZZ001")
        return seen["finish"]

    advance = advance_request(company=company, external_id="FINISHED", amount=Decimal("300.00"),
                              payouts=payout_inputs("100.00", "200.00"), gate=gate, finish_with=finisher)

    token = [Slot(n).token for n in range(9)]
    assert seen["rendered"] == (token[1], token[2], token[3], token[4], [(token[5], token[6]), (token[7], token[8])])
    assert seen["finish"].value == "50.00 250.00 2026-11-25 2026-11-26 50.00 50.00 0.00 200.00"
    assert _fields(advance) == _fields(Advance.objects.get(pk=advance.pk))
    assert [_fields(p) for p in advance.created_payouts] == [
        _fields(p) for p in Payout.objects.filter(advance=advance).order_by("sequence")
    ]
