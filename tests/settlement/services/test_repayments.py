import re
from decimal import Decimal

import pytest
from ulid import ULID

from funding.models import AdvanceStatus
from ledger.models import AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import Repayment, RepaymentAllocation
from settlement.services.nightly import repayments_collect_run
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import available, balance, credit_settlement, disbursed_advance

pytestmark = pytest.mark.django_db


def _to_due_date(advance):
    from funding.models import BusinessDay

    BusinessDay.objects.update(current=advance.due_date)


def test_full_repayment_allocates_fee_then_principal_and_repays(business_day):
    company, line = company_with_line()
    advance = disbursed_advance(company, "100000.00")
    assert advance.fee == Decimal("30.00")  # 100000 x 0.0003 x 1 day (Wed -> Thu)
    line.refresh_from_db()
    assert line.outstanding == Decimal("100000.00")
    _to_due_date(advance)
    credit_settlement(company, "150000.00")

    outcome = repayments_collect_run()

    assert outcome.run.counts["advances_repaid"] == 1
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert (advance.principal_repaid, advance.fee_repaid) == (Decimal("100000.00"), Decimal("30.00"))
    repayment = Repayment.objects.get()
    assert (repayment.amount, repayment.penalty, repayment.fee, repayment.principal) == (
        Decimal("100030.00"),
        Decimal("0.00"),
        Decimal("30.00"),
        Decimal("100000.00"),
    )
    allocation = RepaymentAllocation.objects.get()
    assert (allocation.fee, allocation.principal, allocation.settles_advance) == (
        Decimal("30.00"),
        Decimal("100000.00"),
        True,
    )
    line.refresh_from_db()
    assert line.outstanding == Decimal("0.00")
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("0.00")
    assert balance(company, AccountKind.FEE_RECEIVABLE) == Decimal("0.00")
    assert available(company) == Decimal("49970.00")
    assert company.webhook_events.filter(type="advance.repaid", resource_id=advance.public_id).count() == 1
    event = company.webhook_events.get(type="advance.repaid")
    assert re.fullmatch(r"evt_[0-9A-HJKMNP-TV-Z]{26}", event.public_id)
    assert event.payload["id"] == event.public_id
    assert str(ULID.from_str(event.public_id[4:]).datetime.date()) >= "2026-01-01"
    assert event.payload["data"]["status"] == "repaid"
    assert event.payload["data"]["outstanding_amount"] == "0.00"
    assert event.payload["data"]["version"] == advance.version
    assert len(event.payload["data"]["payouts"]) == 1
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_partial_repayment_oldest_first_fee_before_principal(business_day):
    company, line = company_with_line()
    first = disbursed_advance(company, "1000.00")  # fee 0.30
    second = disbursed_advance(company, "2000.00")  # fee 0.60
    _to_due_date(first)
    credit_settlement(company, "1500.00")

    repayments_collect_run()

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == AdvanceStatus.REPAID
    assert (first.fee_repaid, first.principal_repaid) == (Decimal("0.30"), Decimal("1000.00"))
    # 1500 - 1000.30 = 499.70: the second's fee first, then 499.10 of principal.
    assert second.status == AdvanceStatus.DISBURSED
    assert (second.fee_repaid, second.principal_repaid) == (Decimal("0.60"), Decimal("499.10"))
    allocations = {a.advance_id: a for a in RepaymentAllocation.objects.all()}
    assert allocations[second.pk].settles_advance is False
    assert available(company) == Decimal("0.00")
    line.refresh_from_db()
    assert line.outstanding == Decimal("3000.00") - Decimal("1000.00") - Decimal("499.10")
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == line.outstanding
    assert company.webhook_events.filter(type="advance.repaid").count() == 1


def test_zero_balance_takes_nothing_and_records_nothing(business_day):
    company, line = company_with_line()
    advance = disbursed_advance(company, "1000.00")
    _to_due_date(advance)

    outcome = repayments_collect_run()

    assert outcome.run.counts.get("repayments", 0) == 0
    assert Repayment.objects.count() == 0
    assert RepaymentAllocation.objects.count() == 0
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSED
    assert advance.version == 2
    line.refresh_from_db()
    assert line.outstanding == Decimal("1000.00")


def test_advances_not_yet_due_are_left_alone(business_day):
    company, _ = company_with_line()
    advance = disbursed_advance(company, "1000.00")
    credit_settlement(company, "5000.00")

    repayments_collect_run()  # the business date is still the advance's own date

    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSED
    assert Repayment.objects.count() == 0


def test_a_second_pass_takes_only_what_is_still_due(business_day):
    company, _ = company_with_line()
    advance = disbursed_advance(company, "1000.00")
    _to_due_date(advance)
    credit_settlement(company, "400.00")
    repayments_collect_run()
    credit_settlement(company, "700.00")

    second = repayments_collect_run()

    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert second.run.sequence == 2
    assert [r.amount for r in Repayment.objects.order_by("id")] == [Decimal("400.00"), Decimal("600.30")]
    assert available(company) == Decimal("99.70")
