"""Due dates come from the stored calendar at request time; the fee counts calendar days to the due date."""

from datetime import date
from decimal import Decimal

import pytest

from funding.models import BusinessDay
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import disbursed_advance

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("business_date", "due_date", "fee"),
    [
        (date(2026, 11, 27), date(2026, 11, 30), Decimal("90.00")),  # Friday -> Monday, 3 days
        (date(2026, 9, 30), date(2026, 10, 8), Decimal("240.00")),  # before National Day -> after it, 8 days
        (date(2026, 2, 13), date(2026, 2, 14), Decimal("30.00")),  # Friday -> make-up working Saturday (调休)
    ],
)
def test_due_date_and_fee(business_day, business_date, due_date, fee):
    BusinessDay.objects.update(current=business_date)
    company, _ = company_with_line(daily_fee_rate="0.000300")
    advance = disbursed_advance(company, "100000.00")
    assert advance.due_date == due_date
    assert advance.fee == fee
