"""The daily cap (contract 1.7): held in the same conditional UPDATE as the exposure limit, counted per business
date, cancelled advances given back, a cut below today's usage blocks without touching anything."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from funding.errors import InsufficientLimit
from funding.models import Advance, ChangeRequestKind, CreditLine
from funding.selectors import credit_line_view
from funding.services.advances import advance_cancel, advance_request
from funding.services.credit_lines import change_request_approve, change_request_propose
from funding.services.line_counters import line_hold
from tests.factories import company_with_line, payout_inputs, staff_user

pytestmark = pytest.mark.django_db

D = Decimal
WED, THU = date(2026, 11, 25), date(2026, 11, 26)


def _advance(company, amount: str, external_id: str) -> Advance:
    return advance_request(company=company, external_id=external_id, amount=D(amount), payouts=payout_inputs(amount))


def _change(line, **terms) -> None:
    change_request_approve(
        request=change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(),
                                       reason="cap", proposed=terms),
        checker=staff_user(),
    )


def test_the_cap_bounds_the_days_advances_and_names_its_remainder_when_it_decides(business_day):
    company, line = company_with_line(limit="1000000.00", daily_cap="300000.00")
    line.refresh_from_db()
    assert (line.daily_cap, line.daily_cap_ceiling, line.advanced_today) == (D("300000.00"), D("300000.00"),
                                                                              D("0.00"))
    _advance(company, "200000.00", "A1")

    with pytest.raises(InsufficientLimit) as refused:
        _advance(company, "150000.00", "A2")
    assert refused.value.details == {"available": "100000.00", "requested": "150000.00",
                                     "daily_remaining": "100000.00"}
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today, line.advanced_on) == (D("200000.00"), D("200000.00"), WED)
    assert not Advance.objects.filter(external_id="A2").exists()

    view = credit_line_view(company=company)
    assert (view["daily_cap"], view["advanced_today"], view["available"]) == ("300000.00", "200000.00",
                                                                             "100000.00")
    _advance(company, "100000.00", "A3")
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today) == (D("300000.00"), D("300000.00"))
    assert credit_line_view(company=company)["available"] == "0.00"


def test_a_cancelled_advance_no_longer_counts(business_day):
    company, line = company_with_line(limit="1000000.00", daily_cap="300000.00")
    _advance(company, "200000.00", "A1")
    second = _advance(company, "100000.00", "A2")
    advance_cancel(company=company, public_id=second.public_id, actor_label="test")
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today, line.daily_cap_ceiling) == (D("200000.00"), D("200000.00"),
                                                                            D("300000.00"))
    _advance(company, "100000.00", "A3")  # the cancelled 100,000.00 is room again


def test_the_exposure_limit_deciding_names_no_daily_remainder(business_day):
    company, _ = company_with_line(limit="100000.00", daily_cap="300000.00")
    with pytest.raises(InsufficientLimit) as refused:
        _advance(company, "150000.00", "A1")
    assert refused.value.details == {"available": "100000.00", "requested": "150000.00"}


def test_own_funds_do_not_count_against_the_cap(business_day):
    from tests.money_helpers import settlement_deposit

    company, line = company_with_line(limit="1000000.00", daily_cap="100000.00")
    settlement_deposit(company=company, amount="250000.00", business_date=WED)
    advance = _advance(company, "300000.00", "A1")
    assert (advance.own_funds_amount, advance.advanced_amount) == (D("250000.00"), D("50000.00"))
    line.refresh_from_db()
    assert line.advanced_today == D("50000.00")


def test_a_new_business_date_starts_from_zero_and_yesterdays_cancel_gives_nothing_back(business_day):
    from funding.models import BusinessDay

    company, line = company_with_line(limit="1000000.00", daily_cap="300000.00")
    yesterday = _advance(company, "300000.00", "A1")
    BusinessDay.objects.update(current=THU)  # as end of day leaves it (no hold happened on Thursday yet)
    view = credit_line_view(company=company)
    assert (view["advanced_today"], view["available"]) == ("0.00", "300000.00")
    _advance(company, "250000.00", "A2")
    line.refresh_from_db()
    assert (line.advanced_today, line.advanced_on, line.daily_cap_ceiling) == (D("250000.00"), THU, D("300000.00"))
    advance_cancel(company=company, public_id=yesterday.public_id, actor_label="test")  # Wednesday's
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today) == (D("250000.00"), D("250000.00"))
    with pytest.raises(InsufficientLimit) as refused:
        _advance(company, "60000.00", "A3")
    assert refused.value.details["daily_remaining"] == "50000.00"


def test_a_cap_cut_below_todays_advances_blocks_and_touches_nothing(business_day):
    company, line = company_with_line(limit="1000000.00", daily_cap="300000.00")
    _advance(company, "200000.00", "A1")
    _change(line, daily_cap="100000.00")
    line.refresh_from_db()
    assert (line.daily_cap, line.daily_cap_ceiling, line.advanced_today, line.reserved) == (
        D("100000.00"), D("200000.00"), D("200000.00"), D("200000.00"))
    assert credit_line_view(company=company)["available"] == "0.00"
    with pytest.raises(InsufficientLimit) as refused:
        _advance(company, "0.01", "A2")
    assert refused.value.details == {"available": "0.00", "requested": "0.01", "daily_remaining": "0.00"}

    _change(line, daily_cap="")  # no cap any more
    line.refresh_from_db()
    assert (line.daily_cap, line.daily_cap_ceiling) == (None, None)
    view = credit_line_view(company=company)
    assert (view["daily_cap"], view["advanced_today"], view["available"]) == (None, "200000.00", "800000.00")
    _advance(company, "500000.00", "A3")


def test_the_database_refuses_a_counter_past_the_ceiling(business_day):
    _, line = company_with_line(limit="1000000.00", daily_cap="300000.00")
    assert line_hold(line_id=line.pk, amount=D("300000.00"), business_date=WED)
    assert not line_hold(line_id=line.pk, amount=D("0.01"), business_date=WED)
    with pytest.raises(IntegrityError, match="funding_line_within_daily_cap"), transaction.atomic():
        CreditLine.objects.filter(pk=line.pk).update(advanced_today=D("300000.01"))
    with pytest.raises(IntegrityError, match="funding_line_within_daily_cap"), transaction.atomic():
        CreditLine.objects.filter(pk=line.pk).update(daily_cap_ceiling=None)
    assert line_hold(line_id=line.pk, amount=D("300000.00"), business_date=THU)  # Thursday's own cap


@pytest.mark.parametrize("cap", ["-1.00", "abc", "1.001"])
def test_a_bad_cap_is_a_validation_error(business_day, cap):
    from funding.errors import ValidationFailed

    _, line = company_with_line()
    with pytest.raises(ValidationFailed) as refused:
        change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(),
                               reason="x", proposed={"daily_cap": cap})
    assert list(refused.value.details) == ["daily_cap"]
