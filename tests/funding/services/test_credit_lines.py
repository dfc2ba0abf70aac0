"""Four eyes: the maker never decides their own request; every decision is audited with before/after."""

from decimal import Decimal

import pytest

from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import (
    AuditEvent,
    ChangeRequestKind,
    ChangeRequestStatus,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
    WebhookEvent,
)
from funding.services.credit_lines import (
    change_request_approve,
    change_request_propose,
    change_request_reject,
    company_create,
    credit_line_create,
    credit_line_freeze,
)
from tests.factories import company_with_line, staff_user
from tests.money_helpers import money_snapshot

pytestmark = pytest.mark.django_db

D = Decimal
TERMS = {"approved_limit": "500000.00", "daily_fee_rate": "0.000300", "penalty_rate": "0.000500",
         "valid_from": "2026-01-01", "valid_to": "2027-12-31"}


def _request_state(request: CreditLineChangeRequest) -> tuple:
    request = CreditLineChangeRequest.objects.get(pk=request.pk)
    return request.status, request.checker_id, request.checker_reason, request.decided_at


def test_new_line_needs_a_second_person():
    maker, checker = staff_user(), staff_user()
    company = company_create(code="PAYCO-X", legal_name="X Pay", settlement_account_no="310001")
    line = credit_line_create(company=company, terms=TERMS, actor=maker)
    assert (line.status, line.approved_limit, line.effective_limit) == (
        CreditLineStatus.PENDING_APPROVAL, D("0.00"), D("0.00"))
    request = line.change_requests.get()

    before = money_snapshot()
    with pytest.raises(FourEyesViolation) as info:
        change_request_approve(request=request, checker=maker, reason="self")
    assert info.value.code == "four_eyes_violation"
    with pytest.raises(FourEyesViolation):
        change_request_reject(request=request, checker=maker, reason="self")
    assert money_snapshot() == before
    assert _request_state(request) == (ChangeRequestStatus.PENDING, None, "", None)

    change_request_approve(request=request, checker=checker, reason="credit committee 2026-47")
    line.refresh_from_db()
    assert (line.status, line.approved_limit, line.effective_limit, line.limit_ceiling) == (
        CreditLineStatus.ACTIVE, D("500000.00"), D("500000.00"), D("500000.00"))
    request.refresh_from_db()
    assert (request.status, request.checker, request.checker_reason) == (
        ChangeRequestStatus.APPROVED, checker, "credit committee 2026-47")
    assert request.decided_at is not None


def test_approval_changes_the_effective_limit_and_is_audited():
    company, line = company_with_line(limit="1000000.00")
    maker, checker = staff_user("maker"), staff_user("checker")
    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                     proposed={"approved_limit": "1500000.00", "daily_fee_rate": "0.000250"},
                                     maker=maker, reason="flow grew")
    line.refresh_from_db()
    assert line.effective_limit == D("1000000.00")  # a proposal alone changes nothing
    proposed_audit = AuditEvent.objects.get(action="change_request.proposed", object_id=str(request.pk))
    assert (proposed_audit.actor, proposed_audit.actor_label, proposed_audit.reason) == (
        maker, "maker", "flow grew")
    assert proposed_audit.before["approved_limit"] == "1000000.00"
    assert proposed_audit.after == {"approved_limit": "1500000.00", "daily_fee_rate": "0.000250"}

    change_request_approve(request=request, checker=checker, reason="ok")

    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit, line.daily_fee_rate, line.limit_ceiling) == (
        D("1500000.00"), D("1500000.00"), D("0.000250"), D("1500000.00"))
    assert line.available == D("1500000.00")
    assert line.limit_factors == [{"factor": "approved_limit", "value": "1500000.00"}]
    approved = AuditEvent.objects.get(action="change_request.approved", object_id=str(request.pk))
    assert (approved.actor, approved.actor_label, approved.company, approved.reason) == (
        checker, "checker", company, "ok")
    assert (approved.before["approved_limit"], approved.after["approved_limit"]) == (
        "1000000.00", "1500000.00")
    assert (approved.before["daily_fee_rate"], approved.after["daily_fee_rate"]) == ("0.000300", "0.000250")
    line_audit = AuditEvent.objects.get(action="credit_line.change_terms", object_id=str(line.pk))
    assert line_audit.after["effective_limit"] == "1500000.00"
    event = WebhookEvent.objects.filter(type="credit_line.limit_changed").latest("id")
    assert event.payload["data"]["effective_limit"] == "1500000.00"
    assert event.resource_version == line.version


def test_maker_cannot_approve_or_reject_a_limit_change():
    company, line = company_with_line()
    maker = staff_user()
    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                     proposed={"approved_limit": "9000000.00"}, maker=maker, reason="more")
    before = money_snapshot()
    with pytest.raises(FourEyesViolation):
        change_request_approve(request=request, checker=maker, reason="")
    with pytest.raises(FourEyesViolation):
        change_request_reject(request=request, checker=maker, reason="no")
    assert money_snapshot() == before
    assert CreditLine.objects.get(pk=line.pk).effective_limit == D("1000000.00")
    assert _request_state(request) == (ChangeRequestStatus.PENDING, None, "", None)


def test_rejection_keeps_the_terms_and_is_audited():
    company, line = company_with_line()
    maker, checker = staff_user(), staff_user()
    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                     proposed={"approved_limit": "9000000.00"}, maker=maker, reason="more")
    with pytest.raises(ValidationFailed):
        change_request_reject(request=request, checker=checker, reason="  ")
    change_request_reject(request=request, checker=checker, reason="no collateral")
    assert CreditLine.objects.get(pk=line.pk).effective_limit == D("1000000.00")
    assert _request_state(request)[:3] == (ChangeRequestStatus.REJECTED, checker.pk, "no collateral")
    audit = AuditEvent.objects.get(action="change_request.rejected")
    assert (audit.actor, audit.reason, audit.after) == (
        checker, "no collateral", {"approved_limit": "9000000.00"})
    with pytest.raises(InvalidState):
        change_request_approve(request=request, checker=staff_user(), reason="late")


def test_new_line_terms_are_validated():
    company = company_create(code="PAYCO-V", legal_name="V Pay", settlement_account_no="310003")
    with pytest.raises(ValidationFailed):
        credit_line_create(company=company, terms={**TERMS, "valid_to": "2025-12-31"}, actor=staff_user())
    with pytest.raises(ValidationFailed):
        credit_line_create(company=company, terms={"approved_limit": "1.00"}, actor=staff_user())
    assert not CreditLine.objects.filter(company=company).exists()


def test_rejecting_a_new_line_rejects_the_line():
    maker, checker = staff_user(), staff_user()
    company = company_create(code="PAYCO-R", legal_name="R Pay", settlement_account_no="310002")
    line = credit_line_create(company=company, terms=TERMS, actor=maker)
    change_request_reject(request=line.change_requests.get(), checker=checker, reason="bad risk")
    line.refresh_from_db()
    assert line.status == CreditLineStatus.REJECTED


def test_a_second_pending_request_of_the_same_kind_is_refused():
    company, line = company_with_line()
    maker = staff_user()
    change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                           proposed={"approved_limit": "2000000.00"}, maker=maker, reason="one")
    before = money_snapshot()
    with pytest.raises(DuplicatePendingRequest) as info:
        change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                               proposed={"approved_limit": "3000000.00"}, maker=staff_user(), reason="two")
    assert info.value.code == "duplicate_pending_request"
    assert money_snapshot() == before
    assert CreditLineChangeRequest.objects.filter(credit_line=line, status="pending").count() == 1


def test_proposals_are_validated():
    company, line = company_with_line()
    maker = staff_user()
    bad = [
        ({"approved_limit": "-1"}, "x"), ({"nonsense": "1"}, "x"), ({"approved_limit": "abc"}, "x"),
        ({}, "x"), ({"approved_limit": "1"}, " "), ({"approved_limit": "NaN"}, "x"),
        ({"approved_limit": "Infinity"}, "x"),
        # These used to pass the proposal and then fail at approval with a DataError/IntegrityError (a 5xx).
        ({"approved_limit": "10000000000000.00"}, "x"), ({"daily_fee_rate": "5000000"}, "x"),
        ({"flow_multiple": "123456"}, "x"), ({"flow_window_days": "-3"}, "x"),
        ({"flow_window_days": "40000"}, "x"), ({"valid_from": "2027-01-01", "valid_to": "2026-01-01"}, "x"),
        ({"valid_to": "2025-12-31"}, "x"),  # before the line's current valid_from (2026-01-01)
    ]
    before = money_snapshot()
    for proposed, reason in bad:
        with pytest.raises(ValidationFailed):
            change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, proposed=proposed,
                                   maker=maker, reason=reason)
    assert money_snapshot() == before
    assert not CreditLineChangeRequest.objects.filter(credit_line=line, kind="change_terms").exists()


def test_freeze_is_immediate_and_unfreeze_needs_four_eyes():
    company, line = company_with_line()
    maker, checker = staff_user(), staff_user()
    credit_line_freeze(credit_line=line, actor=maker, reason="overdue")
    line.refresh_from_db()
    assert line.status == CreditLineStatus.FROZEN
    frozen = AuditEvent.objects.get(action="credit_line.frozen")
    assert (frozen.actor, frozen.before, frozen.after, frozen.reason) == (
        maker, {"status": "active"}, {"status": "frozen"}, "overdue")

    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.UNFREEZE, proposed={},
                                     maker=maker, reason="repaid")
    with pytest.raises(FourEyesViolation):
        change_request_approve(request=request, checker=maker)
    assert CreditLine.objects.get(pk=line.pk).status == CreditLineStatus.FROZEN
    change_request_approve(request=request, checker=checker, reason="checked")
    assert CreditLine.objects.get(pk=line.pk).status == CreditLineStatus.ACTIVE
    assert list(WebhookEvent.objects.filter(type__startswith="credit_line.").order_by("id")
                .values_list("type", flat=True)) == [
        "credit_line.limit_changed", "credit_line.frozen", "credit_line.unfrozen"]  # the first: line approved
    frozen_event = WebhookEvent.objects.get(type="credit_line.frozen")
    # The event carries the line as GET /api/v1/credit-line renders it, with an increasing version.
    data = frozen_event.payload["data"]
    assert (data["company"], data["status"], data["effective_limit"], data["available"]) == (
        company.code, "frozen", "1000000.00", "1000000.00")
    assert {"own_funds_available", "business_date", "next_business_date", "limit_factors"} <= set(data)
    assert data["version"] < WebhookEvent.objects.get(type="credit_line.unfrozen").payload["data"]["version"]


def test_unfreeze_request_for_an_active_line_is_refused():
    company, line = company_with_line()
    with pytest.raises(InvalidState):
        change_request_propose(credit_line=line, kind=ChangeRequestKind.UNFREEZE, proposed={},
                               maker=staff_user(), reason="x")


def test_the_checker_is_never_the_maker_even_for_the_database():
    from django.db import IntegrityError, transaction

    company, line = company_with_line()
    request = CreditLineChangeRequest.objects.filter(credit_line=line).get()
    with pytest.raises(IntegrityError, match="funding_checker_is_not_maker"):
        with transaction.atomic():
            CreditLineChangeRequest.objects.filter(pk=request.pk).update(checker=request.maker)
