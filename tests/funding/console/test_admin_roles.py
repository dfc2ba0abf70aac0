"""The admin under each role: which screens open, which actions are offered, and no secret on any page."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from funding.api.models import ApiKey, WebhookEndpoint
from funding.api.services import api_key_issue, webhook_secret_rotate
from funding.console.roles import ROLES
from tests.factories import company_with_line

pytestmark = pytest.mark.django_db

# The actions each role is offered on each admin screen ("delete_selected" is never offered: no delete perms).
EXPECTED_ACTIONS = {
    "funding.company": {
        "credit_officer": {"propose_credit_line", "propose_reactivation"},
        "credit_approver": {"suspend"},
    },
    "funding.creditline": {
        "credit_officer": {"propose_change", "propose_unfreeze", "propose_resume"},
        "credit_approver": {"approve_line", "reject_line", "freeze", "suspend"},
    },
    "funding.creditlinechangerequest": {"credit_approver": {"approve", "reject"}},
    "funding.companychangerequest": {"credit_approver": {"approve", "reject"}},
    "funding.calendarchangerequest": {"credit_approver": {"approve", "reject"}},
    "settlement.channel": {
        "finance": {"import_statement_today", "import_statement_yesterday"},
        "operations": {"mark_unhealthy", "disable_now", "mark_healthy"},
    },
    "settlement.channelerrormapping": {"operations": {"propose_removal"}},
    "settlement.channelchangerequest": {"credit_approver": {"approve", "reject"}},
    "settlement.reconciliationexception": {
        "finance": {"resolve", "propose_write_off"},
        "credit_approver": {"approve_write_off", "reject_write_off"},
    },
    "api.apikey": {"operations": {"revoke"}},
    "api.webhookoutboxevent": {"operations": {"redeliver"}},
}


def _request(user: User):
    request = RequestFactory().get("/")
    request.user = user
    return request


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_is_offered_exactly_its_admin_actions(role, user_in_role):
    user = user_in_role(role)
    for label, by_role in EXPECTED_ACTIONS.items():
        model_admin = admin.site._registry[apps.get_model(label)]
        offered = set(model_admin.get_actions(_request(user))) if model_admin.has_view_or_change_permission(
            _request(user)) else set()
        assert offered == by_role.get(role, set()), (role, label)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_opens_exactly_the_screens_it_may_view(role, user_in_role, business_day):
    user = user_in_role(role)
    client = Client()
    client.force_login(user)
    viewable = {label for label, perms in ROLES[role].items() if "view" in perms}
    for model in admin.site._registry:
        label = model._meta.label_lower
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        status = client.get(url).status_code
        assert status == (200 if label in viewable else 403), (role, label, status)


def test_checker_only_cannot_run_a_proposal_even_by_a_crafted_post(user_in_role, business_day):
    company, line = company_with_line()
    checker = user_in_role("credit_approver")
    client = Client()
    client.force_login(checker)
    response = client.post(
        reverse("admin:funding_creditline_changelist"),
        {"action": "propose_change", "_selected_action": [line.pk], "apply": "1", "approved_limit": "1.00",
         "reason": "crafted"},
        follow=True,
    )
    assert response.status_code == 200
    assert line.change_requests.filter(status="pending").count() == 0
    assert "No action selected." in [str(m) for m in response.context["messages"]]


def test_no_admin_page_shows_an_api_or_webhook_secret(business_day, user_in_role):
    company, _line = company_with_line()
    issued = api_key_issue(company=company, actor_label="test", label="k")
    webhook_secret = webhook_secret_rotate(company=company, actor_label="test")
    key = ApiKey.objects.get(key_id=issued.key_id)
    endpoint = WebhookEndpoint.objects.get(company=company)
    forbidden = [issued.secret, webhook_secret, key.secret_encrypted, endpoint.secret_encrypted,
                 "secret_encrypted"]
    boss = User.objects.create_superuser("boss", password="pw")
    for user in (boss, user_in_role("auditor"), user_in_role("operations")):
        client = Client()
        client.force_login(user)
        pages = [reverse("admin:api_apikey_changelist"), reverse("admin:api_apikey_change", args=[key.pk]),
                 reverse("admin:api_webhookendpoint_changelist"),
                 reverse("admin:api_webhookendpoint_change", args=[endpoint.pk]),
                 reverse("admin:funding_company_change", args=[company.pk]),
                 reverse("console:dashboard")]
        if user.has_perm("funding.view_auditevent"):
            pages.append(reverse("admin:funding_auditevent_changelist"))
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, (user, url)
            body = response.content.decode()
            for secret in forbidden:
                assert secret not in body, (user.username, url)
