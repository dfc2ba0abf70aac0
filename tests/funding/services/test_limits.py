"""Factor limits (contract 1.7): the effective limit is the minimum of the factors at approval, at every change
of the limit or its factors and at end of day; each computation is kept with its inputs."""

import io
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from funding.models import (
    ChangeRequestKind,
    CreditLine,
    LimitFactorSnapshot,
    WebhookEvent,
)
from funding.selectors import credit_line_view
from funding.services.bank_statements import bank_statement_import
from funding.services.credit_lines import (
    change_request_approve,
    change_request_propose,
    company_create,
    credit_line_create,
)
from tests.factories import calendar_and_business_date, staff_user
from tests.funding.api.conftest import signed_client_for
from tests.settlement.nightly_helpers import statement_csv

pytestmark = pytest.mark.django_db

D = Decimal
TUESDAY = date(2026, 11, 24)
FLOW = {"factor": "flow", "value": "900000.00", "multiple": "1.50", "base": "600000.00", "as_of": "2026-11-24",
        "window_business_days": 5, "window_from": "2026-11-18", "window_to": "2026-11-24"}


def _company_with_history():
    """A company whose settlement account was credited 3,000,000.00 over the 5 business days to Tuesday
    2026-11-24 (average 600,000.00) and whose margin deposit holds 100,000.00."""
    company = company_create(code="PAYCO-F", legal_name="Flow Co", settlement_account_no="31000000000777",
                             margin_account_no="32000000000777")
    rows = [(day, company.settlement_account_no, "C", amount, f"CLR-{day}", "UnionPay", "T+1")
            for day, amount in [("2026-11-18", "500000.00"), ("2026-11-19", "700000.00"),
                                ("2026-11-20", "400000.00"), ("2026-11-23", "800000.00"),
                                ("2026-11-24", "600000.00"), ("2026-11-17", "9000000.00")]]  # 11-17: outside
    rows.append(("2026-11-24", company.margin_account_no, "C", "100000.00", "MRG-1", "", "margin"))
    result = bank_statement_import(stream=io.BytesIO(statement_csv(*rows)), filename="s.csv", imported_by="test")
    assert result.ok, result.rejections
    return company


def _approve_new_line(company, **terms) -> CreditLine:
    line = credit_line_create(company=company, actor=staff_user(), terms={
        "approved_limit": "5000000.00", "daily_fee_rate": "0.000300", "penalty_rate": "0.000500",
        "valid_from": "2026-01-01", "valid_to": "2027-12-31", **terms})
    change_request_approve(request=line.change_requests.get(), checker=staff_user("checker"))
    line.refresh_from_db()
    return line


def test_approval_sets_the_minimum_of_the_factors_at_once_with_their_inputs():
    calendar_and_business_date(current=TUESDAY)
    company = _company_with_history()
    line = _approve_new_line(company, flow_multiple="1.5", flow_window_days=5, margin_multiple="10")

    assert (line.status, line.approved_limit, line.effective_limit) == ("active", D("5000000.00"), D("900000.00"))
    factors = [
        {"factor": "approved_limit", "value": "5000000.00"},
        FLOW,
        {"factor": "margin", "value": "1000000.00", "multiple": "10.00", "base": "100000.00", "as_of": "2026-11-24"},
    ]
    assert line.limit_factors == factors
    assert line.limit_factors_date == TUESDAY
    snapshot = LimitFactorSnapshot.objects.get(credit_line=line)
    assert (snapshot.trigger, snapshot.as_of, snapshot.approved_limit, snapshot.effective_limit,
            snapshot.factors, snapshot.actor_label) == ("approval", TUESDAY, D("5000000.00"), D("900000.00"),
                                                         factors, "checker")
    assert snapshot.change_request == line.change_requests.get()

    body = signed_client_for(company).get("/api/v1/credit-line").json()
    assert body["limit_factors"] == factors
    assert (body["effective_limit"], body["available"]) == ("900000.00", "900000.00")
    event = WebhookEvent.objects.get(company=company, type="credit_line.limit_changed")
    assert event.payload["data"]["limit_factors"] == factors


def test_a_limit_change_is_recomputed_against_the_factors_not_taken_as_is():
    calendar_and_business_date(current=TUESDAY)
    company = _company_with_history()
    line = _approve_new_line(company, flow_multiple="1.5", flow_window_days=5)
    maker, checker = staff_user(), staff_user("checker2")

    raise_limit = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=maker,
                                         reason="growth", proposed={"approved_limit": "8000000.00"})
    change_request_approve(request=raise_limit, checker=checker)
    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit) == (D("8000000.00"), D("900000.00"))  # flow still decides
    assert line.limit_factors[0] == {"factor": "approved_limit", "value": "8000000.00"}

    cut = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=maker,
                                 reason="flow drops", proposed={"approved_limit": "700000.00"})
    change_request_approve(request=cut, checker=checker)
    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit) == (D("700000.00"), D("700000.00"))

    multiple = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=maker,
                                      reason="review", proposed={"approved_limit": "2000000.00",
                                                                 "flow_multiple": "0.5"})
    change_request_approve(request=multiple, checker=checker)
    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit) == (D("2000000.00"), D("300000.00"))  # 0.5 x 600000
    assert line.limit_factors[1]["multiple"] == "0.50"

    history = list(LimitFactorSnapshot.objects.filter(credit_line=line).order_by("id")
                   .values_list("trigger", "approved_limit", "effective_limit"))
    assert history == [("approval", D("5000000.00"), D("900000.00")),
                       ("limit_change", D("8000000.00"), D("900000.00")),
                       ("limit_change", D("700000.00"), D("700000.00")),
                       ("limit_change", D("2000000.00"), D("300000.00"))]
    assert WebhookEvent.objects.filter(company=company, type="credit_line.limit_changed").count() == 4

    # A change of other terms computes nothing.
    fee = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=maker, reason="fee",
                                 proposed={"daily_fee_rate": "0.000250"})
    change_request_approve(request=fee, checker=checker)
    assert LimitFactorSnapshot.objects.filter(credit_line=line).count() == 4


def test_a_new_company_without_history_earns_its_flow_limit():
    calendar_and_business_date(current=TUESDAY)
    company = company_create(code="PAYCO-N", legal_name="New Co", settlement_account_no="31000000000888")
    line = _approve_new_line(company, flow_multiple="3")
    assert line.effective_limit == D("0.00")
    assert credit_line_view(company=company)["limit_factors"][1] == {
        "factor": "flow", "value": "0.00", "multiple": "3.00", "base": "0.00", "as_of": "2026-11-24",
        "window_business_days": 20, "window_from": "2026-10-28", "window_to": "2026-11-24"}


def test_snapshots_are_append_only():
    calendar_and_business_date(current=TUESDAY)
    line = _approve_new_line(_company_with_history(), flow_multiple="1.5", flow_window_days=5)
    snapshot = LimitFactorSnapshot.objects.get(credit_line=line)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LimitFactorSnapshot.objects.filter(pk=snapshot.pk).update(effective_limit=D("5000000.00"))
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LimitFactorSnapshot.objects.filter(pk=snapshot.pk).delete()

