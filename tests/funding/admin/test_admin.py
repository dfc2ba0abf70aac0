"""The admin goes through the services: four eyes holds there too, the ledger is read-only, no N+1."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from funding.models import (
    AuditEvent,
    CalendarChangeRequest,
    CalendarDay,
    ChangeRequestKind,
    ChangeRequestStatus,
    Company,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
)
from funding.services.advances import advance_request
from funding.services.credit_lines import change_request_propose
from ledger.models import Account, Entry, JournalTransaction
from tests.factories import company_with_line, payout_inputs
from tests.money_helpers import settlement_deposit

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def maker() -> User:
    return User.objects.create_superuser("maker", "maker@example.com", "pw")


@pytest.fixture
def checker() -> User:
    return User.objects.create_superuser("checker", "checker@example.com", "pw")


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _action(client: Client, model: str, action: str, pks: list[int], **data):
    url = reverse(f"admin:{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": pks, **data}, follow=True)


@pytest.fixture
def populated(business_day):
    for _ in range(3):
        company, line = company_with_line()
        settlement_deposit(company=company, amount="100.00", business_date=date(2026, 11, 25))
        for n in range(2):
            advance_request(company=company, external_id=f"A{n}", amount=D("300.00"),
                            payouts=payout_inputs("100.00", "200.00"))


CHANGELISTS = [
    "funding_company", "funding_creditline", "funding_creditlinechangerequest", "funding_advance",
    "api_webhookoutboxevent", "funding_auditevent", "funding_businessday", "funding_calendaryear",
    "funding_calendarday", "funding_calendarchangerequest", "ledger_account", "ledger_journaltransaction",
    "ledger_entry", "funding_payout", "settlement_payoutattempt",
]


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_changelist_loads_without_n_plus_1(populated, maker, model, django_assert_max_num_queries):
    client = _client(maker)
    with django_assert_max_num_queries(12):
        response = client.get(reverse(f"admin:{model}_changelist"))
    assert response.status_code == 200


def test_detail_pages_load(populated, maker):
    client = _client(maker)
    line = CreditLine.objects.first()
    entry = Entry.objects.first()
    for url in [reverse("admin:funding_creditline_change", args=[line.pk]),
                reverse("admin:funding_company_change", args=[line.company_id]),
                reverse("admin:ledger_journaltransaction_change", args=[entry.transaction_id]),
                reverse("admin:ledger_account_change", args=[entry.account_id])]:
        assert client.get(url).status_code == 200


def test_ledger_is_read_only(populated, maker):
    client = _client(maker)
    entry = Entry.objects.first()
    assert client.get(reverse("admin:ledger_entry_add")).status_code == 403
    assert client.get(reverse("admin:ledger_journaltransaction_add")).status_code == 403
    assert client.get(reverse("admin:ledger_account_add")).status_code == 403
    delete_url = reverse("admin:ledger_entry_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    response = client.post(reverse("admin:ledger_account_change", args=[entry.account_id]),
                           {"debits_posted": "0"})
    assert response.status_code == 403
    assert Entry.objects.filter(pk=entry.pk).exists()
    changelist = client.get(reverse("admin:ledger_entry_changelist"))
    assert "delete_selected" not in changelist.content.decode()


def test_maker_cannot_approve_in_the_admin_and_checker_can(business_day, maker, checker):
    company, line = company_with_line()
    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                     proposed={"approved_limit": "2000000.00"}, maker=maker, reason="growth")

    # The action first shows the reason form; nothing happens yet.
    page = _action(_client(maker), "funding_creditlinechangerequest", "approve", [request.pk])
    assert page.status_code == 200 and b'name="reason"' in page.content
    assert CreditLineChangeRequest.objects.get(pk=request.pk).status == ChangeRequestStatus.PENDING

    refused = _action(_client(maker), "funding_creditlinechangerequest", "approve", [request.pk],
                      apply="1", reason="self")
    assert any("four_eyes_violation" in m for m in _messages(refused))
    assert CreditLineChangeRequest.objects.get(pk=request.pk).status == ChangeRequestStatus.PENDING
    assert CreditLine.objects.get(pk=line.pk).effective_limit == D("1000000.00")

    done = _action(_client(checker), "funding_creditlinechangerequest", "approve", [request.pk],
                   apply="1", reason="committee")
    assert any("Requests approved: 1" in m for m in _messages(done))
    request.refresh_from_db()
    assert (request.status, request.checker, request.checker_reason) == (
        ChangeRequestStatus.APPROVED, checker, "committee")
    assert CreditLine.objects.get(pk=line.pk).effective_limit == D("2000000.00")


def test_reject_needs_a_reason(business_day, maker, checker):
    company, line = company_with_line()
    request = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                     proposed={"approved_limit": "2000000.00"}, maker=maker, reason="growth")
    page = _action(_client(checker), "funding_creditlinechangerequest", "reject", [request.pk], apply="1",
                   reason="")
    assert b"This field is required" in page.content
    assert CreditLineChangeRequest.objects.get(pk=request.pk).status == ChangeRequestStatus.PENDING
    _action(_client(checker), "funding_creditlinechangerequest", "reject", [request.pk], apply="1",
            reason="no collateral")
    assert CreditLineChangeRequest.objects.get(pk=request.pk).status == ChangeRequestStatus.REJECTED


def test_credit_line_lifecycle_through_admin_actions(business_day, maker, checker):
    client_m, client_c = _client(maker), _client(checker)
    response = client_m.post(reverse("admin:funding_company_add"), {
        "code": "ADMIN-CO", "legal_name": "Admin Pay", "settlement_account_no": "3100777",
        "margin_account_no": "",
    }, follow=True)
    assert response.status_code == 200
    company = Company.objects.get(code="ADMIN-CO")
    assert Account.objects.filter(owner="ADMIN-CO").count() == 5  # created by company_create
    assert AuditEvent.objects.filter(action="company.created", actor=maker).exists()

    _action(client_m, "funding_company", "propose_credit_line", [company.pk], apply="1",
            approved_limit="50000.00", daily_fee_rate="0.000300", penalty_rate="0.000500",
            valid_from="2026-01-01", valid_to="2027-12-31")
    line = CreditLine.objects.get(company=company)
    assert line.status == CreditLineStatus.PENDING_APPROVAL

    refused = _action(client_m, "funding_creditline", "approve_line", [line.pk], apply="1", reason="")
    assert any("four_eyes_violation" in m for m in _messages(refused))
    _action(client_c, "funding_creditline", "approve_line", [line.pk], apply="1", reason="ok")
    line.refresh_from_db()
    assert (line.status, line.effective_limit) == (CreditLineStatus.ACTIVE, D("50000.00"))

    _action(client_m, "funding_creditline", "freeze", [line.pk], apply="1", reason="overdue")
    assert CreditLine.objects.get(pk=line.pk).status == CreditLineStatus.FROZEN
    _action(client_m, "funding_creditline", "propose_unfreeze", [line.pk], apply="1", reason="repaid")
    unfreeze = CreditLineChangeRequest.objects.get(credit_line=line, kind=ChangeRequestKind.UNFREEZE)
    _action(client_c, "funding_creditlinechangerequest", "approve", [unfreeze.pk], apply="1", reason="")
    assert CreditLine.objects.get(pk=line.pk).status == CreditLineStatus.ACTIVE

    _action(client_m, "funding_creditline", "propose_change", [line.pk], apply="1", approved_limit="80000.00",
            reason="more flow")
    change = CreditLineChangeRequest.objects.get(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS)
    assert change.proposed == {"approved_limit": "80000.00"}

    # The change page is read-only: a POST cannot set a status or a counter.
    response = client_m.post(reverse("admin:funding_creditline_change", args=[line.pk]),
                             {"status": "active", "reserved": "0", "effective_limit": "9999999"})
    assert response.status_code == 403
    assert CreditLine.objects.get(pk=line.pk).effective_limit == D("50000.00")


def test_calendar_day_edit_is_a_proposal_applied_by_another_person(business_day, maker, checker):
    client = _client(maker)
    url = reverse("admin:funding_calendarday_change", args=["2026-11-26"])
    assert client.get(url).status_code == 200
    response = client.post(url, {"kind": "holiday", "is_business_day": "", "name": "Closure",
                                 "reason": "regulator notice"}, follow=True)
    assert response.status_code == 200
    # Issue 14: calendar-day changes are under four eyes; the edit only proposes.
    assert CalendarDay.objects.get(date=date(2026, 11, 26)).source == "chinese-calendar"
    proposal = CalendarChangeRequest.objects.get()
    assert _messages(_action(client, "funding_calendarchangerequest", "approve", [proposal.pk], apply="1",
                             reason="")) == [f"{proposal}: The proposer of a calendar change cannot approve or "
                                             "reject it. (four_eyes_violation)"]
    _action(_client(checker), "funding_calendarchangerequest", "approve", [proposal.pk], apply="1", reason="")
    day = CalendarDay.objects.get(date=date(2026, 11, 26))
    assert (day.kind, day.is_business_day, day.source, day.updated_by) == ("holiday", False, "staff", checker)
    audit = AuditEvent.objects.get(action="calendar_day.updated")
    assert (audit.actor, audit.reason) == (checker, f"calendar change #{proposal.pk}: regulator notice")

    inconsistent = client.post(reverse("admin:funding_calendarday_change", args=["2026-11-27"]),
                               {"kind": "workday", "is_business_day": "", "name": "", "reason": "x"})
    assert inconsistent.status_code == 200  # the form again, with an error
    assert CalendarDay.objects.get(date=date(2026, 11, 27)).source == "chinese-calendar"
    assert CalendarChangeRequest.objects.count() == 1


def test_audit_trail_is_view_only(business_day, maker):
    company, line = company_with_line()
    audit = AuditEvent.objects.first()
    client = _client(maker)
    assert client.get(reverse("admin:funding_auditevent_change", args=[audit.pk])).status_code == 200
    assert client.post(reverse("admin:funding_auditevent_change", args=[audit.pk]),
                       {"reason": "edited"}).status_code == 403
    assert client.post(reverse("admin:funding_auditevent_delete", args=[audit.pk]),
                       {"post": "yes"}).status_code == 403
    filtered = reverse("admin:funding_auditevent_changelist") + "?action=company.created"
    assert client.get(filtered).status_code == 200
    assert JournalTransaction.objects.count() == 0


def test_a_proposed_term_of_zero_is_kept():
    from funding.admin.companies import _terms

    assert _terms({"approved_limit": D("0"), "daily_fee_rate": None, "daily_cap": "", "reason": "cut to nothing",
                   "remove_daily_cap": False}) == {"approved_limit": "0"}
    assert _terms({"approved_limit": None, "remove_daily_cap": True, "reason": "no cap"}) == {"daily_cap": ""}
