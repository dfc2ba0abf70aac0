"""One definition of what an advance owes (funding.selectors.OUTSTANDING_PARTS), rendered for Python, the ORM
and SQL, and the two meanings of "overdue" named apart (issue 12 part 5)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from funding.models import Advance, AdvanceStatus
from funding.selectors import (
    AGING_BUCKETS,
    ALL_PARTS,
    PENALTY_BASE_PARTS,
    advance_outstanding,
    aging_bucket,
    aging_bucket_sql,
    credit_line_view,
    outstanding_expression,
    outstanding_sql,
    overdue_owed_by_company,
    overdue_principal,
    repaid_sql,
)
from funding.services.advances import advance_request
from tests.factories import company_with_line, payout_inputs

pytestmark = pytest.mark.django_db

D = Decimal
THU = date(2026, 11, 26)
PART_SETS = [ALL_PARTS, PENALTY_BASE_PARTS, ("principal",), ("fee",), ("penalty",)]
# (status, advanced_disbursed, principal_repaid, fee, fee_repaid, penalty_accrued, penalty_repaid)
ROWS = [
    (AdvanceStatus.DISBURSED, "100000.00", "0.00", "30.00", "0.00", "0.00", "0.00"),
    (AdvanceStatus.OVERDUE, "80000.00", "12345.67", "24.00", "24.00", "16.83", "0.01"),
    (AdvanceStatus.OVERDUE, "50000.00", "0.00", "15.00", "7.50", "3.33", "0.00"),
    (AdvanceStatus.PARTIALLY_DISBURSED, "60000.00", "60000.00", "18.00", "18.00", "0.00", "0.00"),
]


@pytest.fixture
def owed(business_day):
    company, _ = company_with_line(limit="5000000.00")
    other, _ = company_with_line(limit="5000000.00")
    advances = []
    for n, (status, advanced, principal_repaid, fee, fee_repaid, penalty, penalty_repaid) in enumerate(ROWS):
        advance = advance_request(company=company, external_id=f"OWE-{n}", amount=D("100000.00"),
                                  payouts=payout_inputs("100000.00"))
        Advance.objects.filter(pk=advance.pk).update(
            status=status, advanced_disbursed=D(advanced), disbursed_amount=D(advanced),
            principal_repaid=D(principal_repaid), fee=D(fee), fee_repaid=D(fee_repaid),
            penalty_accrued=D(penalty), penalty_repaid=D(penalty_repaid),
            due_date=date(2026, 11, 20) if n == 2 else THU,
        )
        advances.append(Advance.objects.get(pk=advance.pk))
    return company, other, advances


def test_python_orm_and_sql_agree_on_what_an_advance_owes(owed):
    _company, _other, advances = owed
    for parts in PART_SETS:
        orm = dict(Advance.objects.annotate(o=outstanding_expression(parts=parts)).values_list("pk", "o"))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT v.id, {outstanding_sql('v', parts=parts)} FROM funding_advance v")
            sql = dict(cursor.fetchall())
        python = {a.pk: advance_outstanding(a, parts=parts) for a in advances}
        assert orm == sql == python, parts
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT v.id, {repaid_sql('v')} FROM funding_advance v")
        assert dict(cursor.fetchall()) == {a.pk: a.repaid_amount for a in advances}


def test_the_advance_properties_are_the_definition(owed):
    second = owed[2][1]
    # 80000.00 - 12345.67 + 24.00 - 24.00 + 16.83 - 0.01
    assert second.outstanding_amount == D("67671.15")
    assert second.principal_outstanding == D("67654.33")
    assert second.repaid_amount == D("12369.68")
    assert advance_outstanding(second, parts=PENALTY_BASE_PARTS) == D("67654.33")


def test_overdue_principal_and_overdue_owed_are_two_named_figures(owed):
    company, other, _advances = owed
    # Principal of the two overdue advances: 67654.33 + 50000.00.
    assert overdue_principal(company=company) == D("117654.33")
    assert credit_line_view(company=company)["overdue"] == "117654.33"
    # All they owe: 67671.15 + (50000.00 + 7.50 + 3.33).
    assert overdue_owed_by_company() == {company.pk: D("117681.98")}
    assert overdue_owed_by_company(company_ids=[other.pk]) == {}
    assert overdue_principal(company=other) == D("0.00")
    # Due on or before 2026-11-25: only the third advance (due 2026-11-20).
    assert overdue_owed_by_company(due_by=date(2026, 11, 25)) == {company.pk: D("50010.83")}


def test_aging_buckets_python_and_sql_agree(db):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT d, {aging_bucket_sql('d')} FROM generate_series(-2, 400) d")
        sql = dict(cursor.fetchall())
    assert sql == {d: aging_bucket(d).value for d in range(-2, 401)}
    edges = {d: aging_bucket(d).value for d in (1, 3, 4, 7, 8, 30, 31, 365)}
    assert edges == {1: "1-3", 3: "1-3", 4: "4-7", 7: "4-7", 8: "8-30", 30: "8-30", 31: ">30", 365: ">30"}
    # The table has no gap: each bucket starts the day after the previous one ends.
    assert [first for _b, first, _l in AGING_BUCKETS[1:]] == [last + 1 for _b, _f, last in AGING_BUCKETS[:-1]]


def test_one_business_day_rule_for_python_sql_and_disbursement(business_day, settings):
    from datetime import timedelta

    from funding.errors import CalendarUnavailable
    from funding.models import CalendarYear
    from funding.selectors import (
        business_days_up_to,
        calendar_is_business_day,
        is_business_day,
        next_business_day,
        next_business_days,
    )
    from settlement.services.disbursement.common import _is_business_day

    settings.DISBURSEMENT_ROUTING_CACHE_SECONDS = 0
    days = [date(2026, 9, 20) + timedelta(days=n) for n in range(60)]  # National Day week included
    known = {d: calendar_is_business_day(d) for d in days}
    assert all(v is not None for v in known.values())
    assert {d: is_business_day(d) for d in days} == known
    assert {d: _is_business_day(d) for d in days} == known
    # The SQL function (advance_reserve()'s due dates) and the Python rule agree, one day and in a batch.
    expected = {d: min(b for b in days + [date(2026, 12, 1)] if b > d and (known.get(b) or b.month == 12))
                for d in days[:40]}
    assert {d: next_business_day(d) for d in days[:40]} == expected
    assert next_business_days(days[:40]) == expected
    assert next_business_day(date(2026, 9, 30)) == date(2026, 10, 8)  # after the National Day holidays
    assert business_days_up_to(date(2026, 10, 8), 3) == [date(2026, 10, 8), date(2026, 9, 30), date(2026, 9, 29)]
    # Unknown past the published years: None, a refusal, and no business day for routing.
    CalendarYear.objects.filter(year=2026).update(published=False)
    assert calendar_is_business_day(date(2026, 10, 9)) is None
    assert _is_business_day(date(2026, 10, 9)) is False
    with pytest.raises(CalendarUnavailable):
        is_business_day(date(2026, 10, 9))
    with pytest.raises(CalendarUnavailable):
        next_business_day(date(2026, 10, 9))
    assert next_business_days([date(2026, 10, 9)]) == {date(2026, 10, 9): None}


@pytest.mark.parametrize(
    ("account_kind", "direction", "journal_kind", "expected"),
    [
        ("advance_receivable", "D", "payout.funds_out", ("advanced", 1)),
        ("advance_receivable", "C", "payout.returned", ("advanced", -1)),
        ("advance_receivable", "D", "payout.returned.reversal", ("advanced", 1)),
        ("advance_receivable", "C", "repayment", ("repaid", 1)),
        ("advance_receivable", "D", "repayment.reversal", ("repaid", -1)),
        ("fee_receivable", "D", "advance.fee", ("fees", 1)),
        ("fee_receivable", "C", "advance.fee.reversal", ("fees", -1)),
        ("fee_receivable", "C", "repayment", ("repaid", 1)),
        ("penalty_receivable", "D", "penalty.accrual", ("penalties", 1)),
        ("penalty_receivable", "C", "payout.returned", ("repaid", 1)),  # a return concerns principal only
    ],
)
def test_each_receivable_entry_falls_in_one_category(account_kind, direction, journal_kind, expected):
    from funding.selectors import entry_category

    assert entry_category(account_kind=account_kind, direction=direction, journal_kind=journal_kind) == expected


def test_the_statement_and_the_daily_position_classify_alike(business_day):
    from funding.api.selectors_statements import statement_build
    from funding.console.reports import daily_position
    from ledger.models import Account, AccountKind, JournalTransaction
    from ledger.services import ledger_reverse
    from tests.settlement.nightly_helpers import disbursed_advance

    company, _ = company_with_line()
    disbursed_advance(company, "1000.00")
    second = disbursed_advance(company, "2000.00")
    fee = JournalTransaction.objects.get(kind="advance.fee", reference__contains=second.public_id)
    ledger_reverse(journal=fee, reference=f"{fee.reference}:fix", business_date=date(2026, 11, 25))

    statement = statement_build(company=company, business_date=date(2026, 11, 25))
    row = next(r for r in daily_position(business_date=date(2026, 11, 25)).rows if r["company"] == company.code)
    keys = ("opening_outstanding", "advanced", "fees", "penalties", "repaid", "closing_outstanding")
    assert {k: statement[k] for k in keys} == {k: f"{row[k]:.2f}" for k in keys}
    # Fees 0.30 + 0.60, the second reversed; the closing balance is the ledger's.
    assert {k: statement[k] for k in keys} == {
        "opening_outstanding": "0.00", "advanced": "3000.00", "fees": "0.30", "penalties": "0.00",
        "repaid": "0.00", "closing_outstanding": "3000.30",
    }
    ledger = sum((a.balance for a in Account.objects.filter(
        owner=company.code,
        kind__in=[AccountKind.ADVANCE_RECEIVABLE, AccountKind.FEE_RECEIVABLE, AccountKind.PENALTY_RECEIVABLE])),
        D(0))
    assert ledger == D("3000.30")
