"""credit_line.threshold_reached (contract 1.7): once per business date when utilisation first reaches each
threshold (default 0.80 and 0.95, configurable per line); detected inside advance_reserve()."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from funding.errors import ValidationFailed
from funding.models import BusinessDay, ChangeRequestKind, WebhookEvent
from funding.services.advances import advance_cancel, advance_request
from funding.services.credit_lines import change_request_approve, change_request_propose
from tests.factories import company_with_line, payout_inputs, staff_user

pytestmark = pytest.mark.django_db

D = Decimal


def _advance(company, amount: str, external_id: str):
    return advance_request(company=company, external_id=external_id, amount=D(amount), payouts=payout_inputs(amount))


def _reached(company) -> list[tuple[str, str, str]]:
    return [(e.payload["data"]["threshold"], e.payload["data"]["reserved"], e.payload["data"]["business_date"])
            for e in WebhookEvent.objects.filter(company=company, type="credit_line.threshold_reached").order_by("id")]


def _change(line, **terms) -> None:
    change_request_approve(
        request=change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(),
                                       reason="r", proposed=terms),
        checker=staff_user(),
    )


def test_each_threshold_is_announced_once_per_business_date(business_day):
    company, line = company_with_line(limit="1000000.00")
    _advance(company, "799999.99", "T1")
    assert _reached(company) == []
    _advance(company, "0.01", "T2")  # exactly 0.80
    assert _reached(company) == [("0.80", "800000.00", "2026-11-25")]
    _advance(company, "100000.00", "T3")
    assert len(_reached(company)) == 1
    big = _advance(company, "60000.00", "T4")  # 0.96: 0.95 first reached
    assert _reached(company)[1:] == [("0.95", "960000.00", "2026-11-25")]
    advance_cancel(company=company, public_id=big.public_id, actor_label="test")  # back to 0.90
    _advance(company, "60000.00", "T5")  # 0.96 again the same day: already announced
    assert len(_reached(company)) == 2

    BusinessDay.objects.update(current=date(2026, 11, 26))
    _advance(company, "1.00", "T6")  # a new business date: both reached first today
    assert _reached(company)[2:] == [("0.80", "960001.00", "2026-11-26"), ("0.95", "960001.00", "2026-11-26")]
    event = WebhookEvent.objects.filter(company=company, type="credit_line.threshold_reached").order_by("id").last()
    data = event.payload["data"]
    assert (data["company"], data["status"], data["effective_limit"], data["available"], data["version"]) == (
        company.code, "active", "1000000.00", "39999.00", event.resource_version)


def test_an_advance_that_reaches_no_threshold_costs_no_statement_more(business_day):
    company, _ = company_with_line(limit="1000000.00")
    with CaptureQueriesContext(connection) as plain:
        _advance(company, "1000.00", "Q1")
    with CaptureQueriesContext(connection) as reaching:
        _advance(company, "900000.00", "Q2")
    assert len(plain) == 1 and "advance_reserve(" in plain[0]["sql"]
    assert len(reaching) == 10
    assert sum(q["sql"].startswith("INSERT INTO \"funding_webhookevent\"") for q in reaching) == 1


def test_thresholds_are_configurable_per_line_and_checked_when_changed(business_day):
    company, line = company_with_line(limit="1000000.00", limit_thresholds="0.5")
    line.refresh_from_db()
    assert line.limit_thresholds == [D("0.50")]
    _advance(company, "600000.00", "C1")
    assert _reached(company) == [("0.50", "600000.00", "2026-11-25")]
    _change(line, limit_thresholds="0.55,0.9")  # 0.60 already reached 0.55: announced at approval
    assert _reached(company)[1:] == [("0.55", "600000.00", "2026-11-25")]
    _advance(company, "300000.00", "C2")
    assert _reached(company)[2:] == [("0.90", "900000.00", "2026-11-25")]


def test_a_limit_cut_announces_the_thresholds_it_makes_reached(business_day):
    company, line = company_with_line(limit="1000000.00")
    _advance(company, "500000.00", "L1")
    _change(line, approved_limit="520000.00")  # utilisation 0.96
    assert [t for t, _r, _d in _reached(company)] == ["0.80", "0.95"]


@pytest.mark.parametrize("value", ["0", "1.01", "0.805", "0.1,0.2,0.3,0.4,0.5,0.6", "x"])
def test_bad_thresholds_are_refused(business_day, value):
    _, line = company_with_line()
    with pytest.raises(ValidationFailed) as refused:
        change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(),
                               reason="r", proposed={"limit_thresholds": value})
    assert list(refused.value.details) == ["limit_thresholds"]
