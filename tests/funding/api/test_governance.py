"""Contract 1.7 through the HTTP API: daily cap and advanced_today, company_suspended, outside_channel_hours."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from funding.models import Company
from funding.services.credit_lines import company_suspend
from settlement.services.channels import channel_seed_simulated
from tests.factories import company_with_line, staff_user
from tests.funding.api.conftest import advance_body, error_of, signed_client_for

pytestmark = pytest.mark.django_db


def test_daily_cap_on_the_credit_line_and_in_the_refusal(business_day):
    company, _ = company_with_line(limit="1000000.00", daily_cap="200000.00")
    api = signed_client_for(company)
    assert api.post("/api/v1/advances", advance_body(("100000.00", "50000.00"))).status_code == 201
    body = api.get("/api/v1/credit-line").json()
    assert (body["daily_cap"], body["advanced_today"], body["reserved"], body["available"]) == (
        "200000.00", "150000.00", "150000.00", "50000.00")

    refused = api.post("/api/v1/advances", advance_body(("60000.00",), external_id="SETTLE-2"))
    assert refused.status_code == 422
    assert error_of(refused)["code"] == "insufficient_limit"
    assert error_of(refused)["details"] == {"available": "50000.00", "requested": "60000.00",
                                            "daily_remaining": "50000.00"}
    assert api.get("/api/v1/credit-line").json()["advanced_today"] == "150000.00"


def test_a_suspended_company_is_refused_and_sees_its_status(business_day):
    company, _ = company_with_line()
    api = signed_client_for(company)
    company_suspend(company=Company.objects.get(pk=company.pk), actor=staff_user(), reason="review")
    refused = api.post("/api/v1/advances", advance_body())
    assert refused.status_code == 422
    assert error_of(refused)["code"] == "company_suspended"
    assert api.get("/api/v1/credit-line").json()["status"] == "suspended"


def test_a_payout_no_channel_pays_today_is_refused_by_index(business_day, monkeypatch):
    channel_seed_simulated()
    company, _ = company_with_line()
    api = signed_client_for(company)
    late = datetime(2026, 11, 25, 17, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    real_now = timezone.now
    # The clock at the edge: the request is signed with the real time, the engine sees 17:30 on the business date.
    monkeypatch.setattr("funding.services.advances.timezone.now", lambda: late)
    refused = api.post("/api/v1/advances", advance_body(("40000.00", "100000.00")))
    monkeypatch.setattr("funding.services.advances.timezone.now", real_now)
    assert refused.status_code == 422
    error = error_of(refused)
    assert error["code"] == "outside_channel_hours"
    assert list(error["details"]) == ["payouts.1.amount"]
    assert api.get("/api/v1/credit-line").json()["reserved"] == "0.00"
