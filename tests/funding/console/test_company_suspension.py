"""Suspending a company in the console (one checker, at once) and reactivating it (maker, then checker)."""

import pytest
from django.urls import reverse

from funding.models import Company, CompanyChangeRequest
from tests.factories import company_with_line

pytestmark = pytest.mark.django_db


def _action(client, model: str, action: str, pk: int, **data):
    return client.post(reverse(f"admin:{model}_changelist"),
                       {"action": action, "_selected_action": [pk], "apply": "1", **data}, follow=True)


def test_suspend_at_once_and_reactivate_under_four_eyes(client, user_in_role, business_day):
    company, _ = company_with_line()
    officer, approver = user_in_role("credit_officer"), user_in_role("credit_approver")

    client.force_login(officer)
    _action(client, "funding_company", "suspend", company.pk, reason="AML")  # the maker may not suspend
    assert Company.objects.get(pk=company.pk).status == "active"

    client.force_login(approver)
    _action(client, "funding_company", "suspend", company.pk, reason="AML review")
    assert Company.objects.get(pk=company.pk).status == "suspended"
    _action(client, "funding_company", "propose_reactivation", company.pk, reason="mine")  # checker: no
    assert not CompanyChangeRequest.objects.exists()

    client.force_login(officer)
    _action(client, "funding_company", "propose_reactivation", company.pk, reason="review closed")
    request = CompanyChangeRequest.objects.get()
    queues = client.get(reverse("console:queues")).content.decode()
    assert f'data-company-request="{request.pk}"' in queues and 'data-action="approve"' not in queues

    client.force_login(approver)
    queues = client.get(reverse("console:queues")).content.decode()
    assert f'data-company-request="{request.pk}"' in queues and 'data-action="approve"' in queues
    _action(client, "funding_companychangerequest", "approve", request.pk, reason="")
    assert Company.objects.get(pk=company.pk).status == "active"
