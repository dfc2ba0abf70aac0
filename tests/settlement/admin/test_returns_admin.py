"""The staff console books returns under four eyes: maker proposes on the add form, another user approves."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from funding.models import PayoutStatus
from settlement.models import PayoutReturn, PayoutReturnRequest
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import ledger_fingerprint
from tests.settlement.services.test_returns import paid_advance

pytestmark = pytest.mark.django_db


def _login(name: str) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(name, f"{name}@bank.test", "pw-long-enough-123"))
    return client


def test_console_return_needs_two_people_and_shows_on_the_payout_page(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    payout = advance.payouts.get(sequence=2)
    maker, checker = _login("ops.maker"), _login("ops.checker")
    add = reverse("admin:settlement_payoutreturnrequest_add")
    assert maker.get(add).status_code == 200

    response = maker.post(add, {"payout_id": payout.public_id, "reason": "ICBC return advice TH2026112500017"})
    assert response.status_code == 302, response.content.decode()[:2000]
    request = PayoutReturnRequest.objects.get()
    assert (request.status, request.proposed_by.username) == ("proposed", "ops.maker")
    before = ledger_fingerprint()
    change = reverse("admin:settlement_payoutreturnrequest_change", args=[request.pk])
    response = maker.post(change, {"action": "approve", "decision": ""})
    assert response.status_code == 200 and "four_eyes_violation" in response.content.decode()
    assert ledger_fingerprint() == before
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SUCCEEDED

    assert checker.post(change, {"action": "approve", "decision": "advice verified"}).status_code == 302
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED
    assert PayoutReturn.objects.get().amount == Decimal("40000.00")
    for name in ["settlement_payoutreturn", "settlement_payoutreturnrequest", "funding_payout", "funding_advance",
                 "settlement_repayment"]:
        assert checker.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    page = checker.get(reverse("admin:funding_payout_change", args=[payout.pk])).content.decode()
    assert "Returned" in page and "40000.00" in page and "18.00" in page  # the fee after the return
    assert checker.get(change).status_code == 200  # decided: shown read-only


def _as(role: str, name: str) -> Client:
    from django.contrib.auth.models import Group

    user = User.objects.create_user(name, password="pw-long-enough-123", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_roles_operations_proposes_the_checker_approves_others_cannot(business_day):
    from funding.console.roles import roles_sync

    roles_sync()
    company, _ = company_with_line()
    payout = paid_advance(company, "1000.00").payouts.get()
    add = reverse("admin:settlement_payoutreturnrequest_add")
    body = {"payout_id": payout.public_id, "reason": "return advice"}
    assert _as("finance", "fin").post(add, body).status_code == 403
    assert _as("credit_approver", "appr0").post(add, body).status_code == 403  # a checker never proposes
    assert _as("operations", "ops").post(add, body).status_code == 302
    request = PayoutReturnRequest.objects.get()
    change = reverse("admin:settlement_payoutreturnrequest_change", args=[request.pk])
    refused = _as("operations", "ops2").post(change, {"action": "approve", "decision": ""})
    assert refused.status_code == 200 and "permission_denied" in refused.content.decode()
    assert _as("auditor", "aud").post(change, {"action": "approve", "decision": ""}).status_code == 403
    assert _as("credit_approver", "appr").post(change, {"action": "approve", "decision": "ok"}).status_code == 302
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED
