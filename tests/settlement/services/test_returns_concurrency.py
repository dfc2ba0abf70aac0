"""Returns racing with the repayment collection of the same company, on real connections.

Whichever commits first, each advance costs the company exactly what stays disbursed: a return booked first
lowers what the collection takes; a collection first is followed by a refund of the repaid excess. No deadlock
(the return locks the settlement account before the advance, as the collection does), balanced books.
"""

from datetime import date
from decimal import Decimal

import pytest

from funding.models import Advance, AdvanceStatus, BusinessDay
from funding.selectors import credit_line_view
from ledger.models import AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import PayoutReturn, ReturnSource
from settlement.services.nightly import repayments_collect_run
from settlement.services.returns import payout_return_book
from tests.factories import calendar_and_business_date, company_with_line
from tests.lock_helpers import race
from tests.settlement.nightly_helpers import available, balance, credit_settlement
from tests.settlement.services.test_returns import paid_advance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ADVANCES = 6


def test_returns_and_collection_at_once_cost_exactly_what_stays_disbursed():
    calendar_and_business_date()
    company, _ = company_with_line(limit="1000000.00")
    advances = [paid_advance(company, "1000.00", "1000.00") for _ in range(ADVANCES)]
    assert {a.fee for a in advances} == {Decimal("0.60")}
    BusinessDay.objects.update(current=date(2026, 11, 26))  # the due date: returns recompute the fee
    credit_settlement(company, "20000.00")
    seconds = [a.payouts.get(sequence=2).pk for a in advances]
    outcomes = race(
        *[lambda pk=pk: payout_return_book(payout_id=pk, source=ReturnSource.STATEMENT, actor_label="race")
          for pk in seconds],
        repayments_collect_run,
    )
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    assert errors == []
    assert PayoutReturn.objects.count() == ADVANCES
    # Each advance: 1000.00 + fee 0.30 (1000 x 0.0003 x 1 day), whichever order the two took.
    assert available(company) == Decimal("20000.00") - ADVANCES * Decimal("1000.30")
    for advance in Advance.objects.filter(pk__in=[a.pk for a in advances]):
        assert (advance.status, advance.fee, advance.returned_amount) == (
            AdvanceStatus.REPAID, Decimal("0.30"), Decimal("1000.00"))
        assert (advance.principal_repaid, advance.fee_repaid, advance.outstanding_amount) == (
            Decimal("1000.00"), Decimal("0.30"), Decimal("0.00"))
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("0.00")
    assert balance(company, AccountKind.FEE_RECEIVABLE) == Decimal("0.00")
    assert credit_line_view(company=company)["outstanding"] == "0.00"
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []
