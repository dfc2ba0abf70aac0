"""Margin set-offs on real concurrent connections: two checkers approving the same set-off apply it once; a
set-off and the repayment collection racing for the same overdue advances serialize on the company's accounts
(never both taking the same debt), whichever comes first."""

from decimal import Decimal

import pytest

from funding.models import Advance, AdvanceStatus, CreditLine
from ledger.models import AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.errors import AmountExceedsOverdue
from settlement.models import MarginSetOff, Repayment, RepaymentSource
from settlement.services.margin import margin_setoff_approve, margin_setoff_propose
from settlement.services.nightly import repayments_collect_run
from tests.factories import calendar_and_business_date, staff_user
from tests.lock_helpers import race
from tests.settlement.nightly_helpers import balance, credit_settlement
from tests.settlement.services.test_margin import make_overdue_company

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _consistent(company) -> None:
    line = CreditLine.objects.get(company=company)
    assert line.outstanding == balance(company, AccountKind.ADVANCE_RECEIVABLE)
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_two_checkers_approving_the_same_setoff_apply_it_once():
    calendar_and_business_date()
    company, line, first, second = make_overdue_company()
    setoff = margin_setoff_propose(company=company, amount="100330.08", maker=staff_user(), reason="overdue")
    checkers = [staff_user(), staff_user()]

    results = race(*[lambda c=c: margin_setoff_approve(setoff=setoff, checker=c) for c in checkers])

    applied = [r for r in results if isinstance(r, MarginSetOff)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(applied) == 1 and len(refused) == 1, results
    assert getattr(refused[0], "code", None) == "invalid_state"
    assert Repayment.objects.filter(source=RepaymentSource.MARGIN_SETOFF).count() == 1
    assert balance(company, AccountKind.MARGIN) == Decimal("19669.92")
    line.refresh_from_db()
    assert line.outstanding == Decimal("49990.00")
    _consistent(company)


def test_setoff_and_collection_racing_never_take_the_same_debt():
    calendar_and_business_date()
    company, line, first, second = make_overdue_company()
    setoff = margin_setoff_propose(company=company, amount="100330.08", maker=staff_user(), reason="overdue")
    credit_settlement(company, "60000.00")
    checker = staff_user()

    setoff_result, collected = race(
        lambda: margin_setoff_approve(setoff=setoff, checker=checker),
        lambda: repayments_collect_run(),
    )

    assert not isinstance(collected, Exception), collected
    setoff.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    if isinstance(setoff_result, MarginSetOff):
        # The set-off first: A repaid and 100.02 of B; the collection then takes B's remaining 49,990.00.
        assert setoff.status == "approved"
        assert Repayment.objects.get(source=RepaymentSource.SETTLEMENT_DEBIT).amount == Decimal("49990.00")
        assert (first.status, second.status) == (AdvanceStatus.REPAID, AdvanceStatus.REPAID)
        assert balance(company, AccountKind.SETTLEMENT) == Decimal("10010.00")
    else:
        # The collection first: 60,000.00 taken (A's penalty, fee and 59,769.94 of principal); the set-off is
        # now above the overdue debt (90,320.08) and refused, still pending.
        assert isinstance(setoff_result, AmountExceedsOverdue), setoff_result
        assert setoff.status == "pending"
        assert Repayment.objects.get().amount == Decimal("60000.00")
        assert first.principal_repaid == Decimal("59769.94")
        assert balance(company, AccountKind.MARGIN) == Decimal("120000.00")
    assert Advance.objects.filter(company=company).exclude(status__in=["repaid", "overdue"]).count() == 0
    _consistent(company)
