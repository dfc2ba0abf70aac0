"""Own funds never take money that is due (contract 1.7, issue 13 part 1).

`own_funds_available` = the settlement account's balance, less what is due for repayment on or before the
business date and not yet collected (penalty, fee and principal of advances due), less own funds held by advances
not yet final; never below 0.00. One definition: PostgreSQL's own_funds_available(), which advance_reserve()
holds own funds from and GET /api/v1/credit-line shows; the parity tests hold it against the same rule written
with the ORM.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F, Sum

from funding.errors import CreditLineFrozen, InsufficientLimit
from funding.models import ADVANCE_COLLECTABLE_STATES, Advance, AdvanceStatus, BusinessDay, Company
from funding.selectors import own_funds_available
from funding.services.advances import advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import Repayment, RepaymentAllocation
from settlement.services.nightly import business_day_close, repayments_collect_run
from tests.factories import company_with_line, payout_inputs
from tests.funding.api.conftest import signed_client_for
from tests.money_helpers import money_snapshot
from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

pytestmark = pytest.mark.django_db

D = Decimal
WED, THU, FRI = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)


def _settlement(company: Company) -> Account:
    return Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)


def _orm_own_funds_available(company: Company, business_date: date) -> Decimal:
    """The contract's rule written a second time, with the ORM, for the parity checks."""
    account = _settlement(company)
    due = Advance.objects.filter(
        company=company, status__in=ADVANCE_COLLECTABLE_STATES, due_date__lte=business_date
    ).aggregate(
        s=Sum(
            F("penalty_accrued") - F("penalty_repaid") + F("fee") - F("fee_repaid")
            + F("advanced_disbursed") - F("principal_repaid")
        )
    )["s"] or D("0.00")
    return max(account.credits_posted - account.debits_posted - account.debits_pending - due, D("0.00"))


def _sql_own_funds_available(company: Company, business_date: date) -> Decimal:
    with connection.cursor() as cursor:
        cursor.execute("SELECT own_funds_available(%s, 'CNY', %s)", [company.pk, business_date])
        return cursor.fetchone()[0]


def _assert_parity(company: Company, expected: str) -> None:
    business_date = BusinessDay.objects.get().current
    sql = _sql_own_funds_available(company, business_date)
    assert (sql, own_funds_available(company=company, business_date=business_date),
            _orm_own_funds_available(company, business_date)) == (D(expected),) * 3
    assert sql.as_tuple().exponent == -2


def _own_request(company: Company, external_id: str, amount: str) -> Advance:
    return advance_request(
        company=company, external_id=external_id, amount=D(amount), payouts=payout_inputs(amount), use_own_funds=True
    )


def _yesterdays_advance_due_today(limit: str = "1000000.00"):
    """The operator's case: 30,000.00 advanced on Wednesday (fee 9.00), due Thursday; Thursday 230,009.00 is in
    the settlement account, 30,009.00 of it to repay that advance."""
    company, line = company_with_line(limit=limit)
    advance = disbursed_advance(company, "30000.00")
    assert (advance.fee, advance.due_date, advance.status) == (D("9.00"), THU, AdvanceStatus.DISBURSED)
    BusinessDay.objects.update(current=THU)
    credit_settlement(company, "230009.00")
    return company, line, advance


def test_operator_case_own_funds_exclude_the_due_repayment_which_is_then_collected_in_full(business_day):
    company, line, due_advance = _yesterdays_advance_due_today()
    api = signed_client_for(company)
    assert _settlement(company).available == D("230009.00")
    body = api.get("/api/v1/credit-line").json()
    assert body["own_funds_available"] == "200000.00"  # was 230009.00: the due 30,009.00 is not free
    _assert_parity(company, "200000.00")

    # A new advance asking own funds for all of it gets the 200,000.00 that is free; the line funds the rest.
    created = api.post(
        "/api/v1/advances",
        {
            "external_id": "OWN-THU-1", "currency": "CNY", "amount": "230009.00", "use_own_funds": True,
            "payouts": [
                {"external_id": "M1", "beneficiary_name": "Shanghai Example Trading Co.",
                 "account_no": "6222020200112233445", "bank_code": "ICBC", "amount": "150000.00"},
                {"external_id": "M2", "beneficiary_name": "Shanghai Example Trading Co.",
                 "account_no": "6222020200112233445", "bank_code": "ICBC", "amount": "80009.00"},
            ],
        },
    )
    assert created.status_code == 201, created.content
    advance = created.json()
    assert (advance["own_funds_amount"], advance["advanced_amount"]) == ("200000.00", "30009.00")
    assert [(p["own_funds_amount"], p["advanced_amount"]) for p in advance["payouts"]] == [
        ("150000.00", "0.00"), ("50000.00", "30009.00"),
    ]
    settlement = _settlement(company)
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("230009.00"), D("0.00"), D("200000.00"))
    assert api.get("/api/v1/credit-line").json()["own_funds_available"] == "0.00"
    _assert_parity(company, "0.00")

    outcome = repayments_collect_run()

    repayment = Repayment.objects.get(company=company)
    assert (repayment.amount, repayment.penalty, repayment.fee, repayment.principal) == (
        D("30009.00"), D("0.00"), D("9.00"), D("30000.00"))
    assert outcome.run.counts["advances_repaid"] == 1
    due_advance.refresh_from_db()
    assert due_advance.status == AdvanceStatus.REPAID
    assert (due_advance.fee_repaid, due_advance.principal_repaid) == (D("9.00"), D("30000.00"))
    settlement.refresh_from_db()
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("230009.00"), D("30009.00"), D("200000.00"))
    assert settlement.available == D("0.00")
    line.refresh_from_db()
    assert (line.reserved, line.outstanding) == (D("30009.00"), D("0.00"))
    _assert_parity(company, "0.00")
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def test_own_funds_part_refused_with_the_line_short_holds_nothing_and_the_due_is_collected(business_day):
    """The line cannot fund what own funds may not take: insufficient_limit naming the line's part, nothing held."""
    company, line, due_advance = _yesterdays_advance_due_today(limit="40000.00")
    line.refresh_from_db()
    assert line.available == D("10000.00")  # 40,000.00 less the 30,000.00 outstanding
    before = money_snapshot()

    with pytest.raises(InsufficientLimit) as refused:
        _own_request(company, "OWN-TOO-MUCH", "215000.00")

    # Own funds could give 200,000.00 (not 215,000.00): the line was asked for 15,000.00 and has 10,000.00.
    assert refused.value.code == "insufficient_limit"
    assert refused.value.details == {"available": "10000.00", "requested": "15000.00"}
    assert money_snapshot() == before
    assert not Advance.objects.filter(external_id="OWN-TOO-MUCH").exists()
    _assert_parity(company, "200000.00")

    accepted = _own_request(company, "OWN-FITS", "210000.00")
    assert (accepted.own_funds_amount, accepted.advanced_amount) == (D("200000.00"), D("10000.00"))
    repayments_collect_run()
    assert Repayment.objects.get(company=company).amount == D("30009.00")
    due_advance.refresh_from_db()
    assert due_advance.status == AdvanceStatus.REPAID


def test_own_funds_available_before_the_due_date_is_the_whole_balance(business_day):
    company, _ = company_with_line()
    disbursed_advance(company, "30000.00")  # due Thursday
    credit_settlement(company, "230009.00")
    _assert_parity(company, "230009.00")  # Wednesday: nothing is due yet


def test_parity_through_holds_partial_collection_and_new_advances(business_day):
    """The SQL, the selector, the ORM rule and what advance_reserve() actually takes agree at every step."""
    company, _ = company_with_line()
    disbursed_advance(company, "30000.00")  # fee 9.00, due Thursday
    credit_settlement(company, "50000.00")
    _assert_parity(company, "50000.00")
    BusinessDay.objects.update(current=THU)
    _assert_parity(company, "19991.00")  # 50,000.00 - 30,009.00

    small = _own_request(company, "OWN-1", "5000.00")
    assert (small.own_funds_amount, small.advanced_amount) == (D("5000.00"), D("0.00"))
    _assert_parity(company, "14991.00")
    big = _own_request(company, "OWN-2", "100000.00")
    assert (big.own_funds_amount, big.advanced_amount) == (D("14991.00"), D("85009.00"))
    _assert_parity(company, "0.00")
    none_left = _own_request(company, "OWN-3", "100.00")
    assert (none_left.own_funds_amount, none_left.advanced_amount) == (D("0.00"), D("100.00"))

    repayments_collect_run()
    assert Repayment.objects.get(company=company).amount == D("30009.00")
    settlement = _settlement(company)
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("50000.00"), D("30009.00"), D("19991.00"))
    _assert_parity(company, "0.00")
    credit_settlement(company, "1000.00")
    _assert_parity(company, "1000.00")


def test_never_below_zero_and_the_line_funds_everything_when_the_due_exceeds_the_balance(business_day):
    company, _ = company_with_line()
    first = disbursed_advance(company, "30000.00")  # fee 9.00, due Thursday
    second = disbursed_advance(company, "250000.00")  # fee 75.00, due Thursday
    BusinessDay.objects.update(current=THU)
    credit_settlement(company, "230009.00")
    _assert_parity(company, "0.00")  # 230,009.00 - 30,009.00 - 250,075.00 < 0

    advance = _own_request(company, "OWN-NONE", "1000.00")
    assert (advance.own_funds_amount, advance.advanced_amount) == (D("0.00"), D("1000.00"))
    assert _settlement(company).debits_pending == D("0.00")

    repayments_collect_run()  # oldest first: the first advance whole, the rest to the second
    allocations = {a.advance_id: a for a in RepaymentAllocation.objects.all()}
    first, rest = allocations[first.pk], allocations[second.pk]
    assert (first.fee, first.principal, first.settles_advance) == (D("9.00"), D("30000.00"), True)
    assert (rest.fee, rest.principal, rest.settles_advance) == (D("75.00"), D("199925.00"), False)
    _assert_parity(company, "0.00")


def test_overdue_penalty_fee_and_principal_are_all_kept_out(business_day):
    company, line = company_with_line()
    advance = disbursed_advance(company, "30000.00")  # fee 9.00, due Thursday
    business_day_close()  # Wednesday
    business_day_close()  # Thursday, nothing paid: overdue; penalty 30,009.00 x 0.0005 = 15.0045 -> 15.00
    assert BusinessDay.objects.get().current == FRI
    advance.refresh_from_db()
    assert (advance.status, advance.penalty_accrued) == (AdvanceStatus.OVERDUE, D("15.00"))
    credit_settlement(company, "100000.00")

    _assert_parity(company, "69976.00")  # 100,000.00 - 15.00 - 9.00 - 30,000.00
    assert signed_client_for(company).get("/api/v1/credit-line").json()["own_funds_available"] == "69976.00"
    with pytest.raises(CreditLineFrozen):  # the frozen line refuses, own funds or not, and holds nothing
        _own_request(company, "OWN-FROZEN", "100.00")
    assert _settlement(company).debits_pending == D("0.00")

    repayments_collect_run()
    repayment = Repayment.objects.get(company=company)
    assert (repayment.penalty, repayment.fee, repayment.principal) == (D("15.00"), D("9.00"), D("30000.00"))
    _assert_parity(company, "69976.00")


@pytest.mark.parametrize("status", [s.value for s in AdvanceStatus])
def test_only_collectable_states_are_due(business_day, status):
    """advances_due() in SQL names the states of funding.models.ADVANCE_COLLECTABLE_STATES, no more, no fewer."""
    company, _, due_advance = _yesterdays_advance_due_today()
    # The status alone is what this checks: set it under the FSM (a test of the SQL's state list only).
    Advance.objects.filter(pk=due_advance.pk).update(status=status)
    expected = "200000.00" if status in ADVANCE_COLLECTABLE_STATES else "230009.00"
    _assert_parity(company, expected)
