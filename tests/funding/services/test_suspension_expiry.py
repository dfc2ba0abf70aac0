"""Company suspension (company_suspended, reactivation under four eyes), line expiry at end of day, and every
FSM transition of Company and CreditLine reachable through a service (contract 1.7)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django_fsm.signals import post_transition

from funding.errors import (
    CompanySuspended,
    CreditLineInactive,
    DuplicatePendingRequest,
    FourEyesViolation,
    InvalidState,
    ValidationFailed,
)
from funding.models import (
    Advance,
    AuditEvent,
    ChangeRequestKind,
    Company,
    CompanyChangeRequest,
    CreditLine,
    WebhookEvent,
)
from funding.selectors import credit_line_view
from funding.services.advances import advance_request
from funding.services.credit_lines import (
    change_request_approve,
    change_request_propose,
    change_request_reject,
    company_change_approve,
    company_change_reject,
    company_create,
    company_reactivation_propose,
    company_suspend,
    credit_line_create,
    credit_line_freeze,
    credit_line_suspend,
    credit_line_unfreeze_automatically,
)
from ledger.models import Account, AccountKind
from settlement.services.nightly import business_day_close
from tests.factories import company_with_line, payout_inputs, staff_user
from tests.money_helpers import settlement_deposit

pytestmark = pytest.mark.django_db

D = Decimal
WED, THU = date(2026, 11, 25), date(2026, 11, 26)


def _advance(company, external_id: str, amount: str = "1000.00") -> Advance:
    return advance_request(company=company, external_id=external_id, amount=D(amount), payouts=payout_inputs(amount))


def _events(company, type_: str) -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(company=company, type=type_).order_by("id"))


def test_a_suspended_company_gets_nothing_until_another_person_reactivates_it(business_day):
    company, line = company_with_line(limit="50000.00")
    settlement_deposit(company=company, amount="500.00", business_date=WED)
    officer, approver = staff_user("officer"), staff_user("approver")
    company_suspend(company=company, actor=approver, reason="AML review")

    with pytest.raises(CompanySuspended) as refused:
        _advance(company, "S1")
    assert (refused.value.code, refused.value.http_status) == ("company_suspended", 422)
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today) == (D("0.00"), D("0.00"))
    assert Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code).debits_pending == D("0.00")
    assert not Advance.objects.exists()
    view = credit_line_view(company=Company.objects.get(pk=company.pk))
    assert view["status"] == "suspended"
    [suspended] = _events(company, "credit_line.suspended")
    assert (suspended.payload["data"]["status"], suspended.resource_id) == ("suspended", str(line.pk))

    request = company_reactivation_propose(company=company, maker=officer, reason="review closed")
    with pytest.raises(DuplicatePendingRequest):
        company_reactivation_propose(company=company, maker=staff_user(), reason="again")
    with pytest.raises(FourEyesViolation):
        company_change_approve(request=request, checker=officer)
    with pytest.raises(IntegrityError, match="funding_company_checker_is_not_maker"), transaction.atomic():
        CompanyChangeRequest.objects.filter(pk=request.pk).update(checker=officer)
    assert Company.objects.get(pk=company.pk).status == "suspended"

    company_change_approve(request=request, checker=approver, reason="ok")
    company.refresh_from_db()
    assert company.status == "active"
    [reactivated] = _events(company, "credit_line.reactivated")
    assert reactivated.payload["data"]["status"] == "active"
    assert reactivated.resource_version == suspended.resource_version + 1
    _advance(company, "S2")
    actions = list(AuditEvent.objects.filter(company=company, action__startswith="company")
                   .order_by("id").values_list("action", "actor_label"))
    assert actions == [("company.created", "system"), ("company.suspended", "approver"),
                       ("company_change.proposed", "officer"), ("company_change.approved", "approver"),
                       ("company.reactivated", "approver")]


def test_suspension_needs_a_reason_an_active_company_and_a_rejection_keeps_it(business_day):
    company, _ = company_with_line()
    with pytest.raises(ValidationFailed):
        company_suspend(company=company, actor=staff_user(), reason=" ")
    with pytest.raises(InvalidState):
        company_reactivation_propose(company=company, maker=staff_user(), reason="not suspended")
    company_suspend(company=company, actor=staff_user(), reason="x")
    with pytest.raises(InvalidState):
        company_suspend(company=company, actor=staff_user(), reason="again")
    request = company_reactivation_propose(company=company, maker=staff_user(), reason="y")
    company_change_reject(request=request, checker=staff_user(), reason="not yet")
    assert Company.objects.get(pk=company.pk).status == "suspended"
    with pytest.raises(CompanySuspended):
        _advance(company, "S1")


def test_a_company_without_a_line_is_suspended_without_an_event(business_day):
    company = company_create(code="NOLINE", legal_name="No line", settlement_account_no="31009999999999")
    company_suspend(company=company, actor=staff_user(), reason="x")
    assert not WebhookEvent.objects.filter(company=company).exists()
    assert credit_line_view(company=Company.objects.get(pk=company.pk))["status"] == "none"


def test_line_suspension_and_resume_announce_themselves(business_day):
    company, line = company_with_line()
    credit_line_suspend(credit_line=line, actor=staff_user(), reason="documents missing")
    with pytest.raises(CreditLineInactive):
        _advance(company, "L1")
    change_request_approve(
        request=change_request_propose(credit_line=line, kind=ChangeRequestKind.RESUME, proposed={},
                                       maker=staff_user(), reason="documents in"),
        checker=staff_user(),
    )
    assert [e.payload["data"]["status"] for e in _events(company, "credit_line.suspended")] == ["suspended"]
    assert [e.payload["data"]["status"] for e in _events(company, "credit_line.reactivated")] == ["active"]
    _advance(company, "L2")


def test_end_of_day_expires_a_line_past_its_validity(business_day):
    company, line = company_with_line(valid_to="2026-11-25")
    other, kept = company_with_line(valid_to="2026-11-26")
    _advance(company, "E1")  # still valid on its last day
    pending = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(),
                                     reason="renewal", proposed={"valid_to": "2027-11-25"})

    outcome = business_day_close()

    line.refresh_from_db()
    kept.refresh_from_db()
    pending.refresh_from_db()
    assert (line.status, kept.status, pending.status) == ("expired", "active", "withdrawn")
    assert outcome.run.counts["lines_expired"] == 1
    [expired] = _events(company, "credit_line.expired")
    assert expired.payload["data"]["status"] == "expired"
    assert credit_line_view(company=company)["status"] == "expired"
    with pytest.raises(CreditLineInactive):
        _advance(company, "E2")
    _advance(other, "E3")  # valid through Thursday
    assert AuditEvent.objects.get(action="credit_line.expired").reason == (
        "valid to 2026-11-25; next business date 2026-11-26")


def test_a_line_past_valid_to_is_inactive_before_end_of_day_expires_it(business_day):
    company, line = company_with_line(valid_from="2026-01-01", valid_to="2026-11-24")
    assert line.status == "active"
    with pytest.raises(CreditLineInactive):
        _advance(company, "V1")


def _declared(model) -> set[tuple[str, str, str]]:
    field = model._meta.get_field("status")
    return {(model.__name__, t.name, str(t.source)) for t in field.get_all_transitions(model)}


def test_every_transition_of_company_and_credit_line_is_reached_by_a_service(business_day):
    seen: set[tuple[str, str, str]] = set()

    def record(sender, instance, name, source, target, **kwargs):
        if sender in (Company, CreditLine):
            seen.add((sender.__name__, name, str(source)))

    post_transition.connect(record)
    try:
        officer, approver = staff_user(), staff_user()

        def approve(line, kind, **proposed):
            change_request_approve(request=change_request_propose(
                credit_line=line, kind=kind, proposed=proposed, maker=officer, reason="r"), checker=approver)

        company, line = company_with_line(valid_to="2026-11-25", auto_unfreeze=True)  # submit, approve
        credit_line_freeze(credit_line=line, actor=approver, reason="r")  # freeze
        approve(line, ChangeRequestKind.UNFREEZE)  # unfreeze
        credit_line_freeze(credit_line=line, actor=approver, reason="r")  # stays frozen through the close
        credit_line_suspend_after = company_with_line(valid_to="2026-11-25")[1]
        credit_line_suspend(credit_line=credit_line_suspend_after, actor=approver, reason="r")  # suspend
        approve(credit_line_suspend_after, ChangeRequestKind.RESUME)  # resume
        credit_line_suspend(credit_line=credit_line_suspend_after, actor=approver, reason="r")
        rejected = credit_line_create(company=company_create(code="REJ", legal_name="R",
                                                             settlement_account_no="31008888888888"),
                                      terms={"approved_limit": "1.00", "valid_from": "2026-01-01",
                                             "valid_to": "2026-11-25"}, actor=officer)
        change_request_reject(request=rejected.change_requests.get(), checker=approver, reason="no")  # reject
        pending = credit_line_create(company=company_create(code="PEND", legal_name="P",
                                                            settlement_account_no="31007777777777"),
                                     terms={"approved_limit": "1.00", "valid_from": "2026-01-01",
                                            "valid_to": "2026-11-25"}, actor=officer)
        active = company_with_line(valid_to="2026-11-25")[1]
        company_suspend(company=active.company, actor=approver, reason="r")  # company suspend
        company_change_approve(request=company_reactivation_propose(company=active.company, maker=officer,
                                                                    reason="r"), checker=approver)  # reactivate
        business_day_close()  # expire: frozen (line), suspended, pending approval, active
        assert {CreditLine.objects.get(pk=pk).status for pk in (line.pk, credit_line_suspend_after.pk,
                                                                 pending.pk, active.pk)} == {"expired"}
        frozen_auto = company_with_line()[1]
        credit_line_freeze(credit_line=frozen_auto, actor=None, actor_label="job", reason="r")
        CreditLine.objects.filter(pk=frozen_auto.pk).update(auto_unfreeze=True)
        credit_line_unfreeze_automatically(credit_line=frozen_auto, reason="r", actor_label="job")
    finally:
        post_transition.disconnect(record)
    assert seen == _declared(Company) | _declared(CreditLine)
