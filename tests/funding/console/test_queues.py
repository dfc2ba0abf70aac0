"""Work queues: each role sees the buttons it may use, and the buttons lead into the admin's own actions."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from funding.console.models import LoginFailure
from funding.models import ChangeRequestKind, ChangeRequestStatus, WebhookEvent, WebhookEventStatus
from funding.services.credit_lines import change_request_propose, credit_line_freeze
from tests.factories import company_with_line

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _buttons(html: str) -> set[str]:
    import re

    return set(re.findall(r'data-action="([a-z_]+)"', html))


@pytest.fixture
def queue_objects(business_day, user_in_role):
    maker = user_in_role("credit_officer", username="maker")
    _company, line = company_with_line()
    change = change_request_propose(credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS,
                                    proposed={"approved_limit": "2000000.00"}, maker=maker, reason="growth")
    _frozen_company, frozen_line = company_with_line()
    credit_line_freeze(credit_line=frozen_line, actor=user_in_role("credit_approver", username="boss"),
                       reason="overdue")
    return {"maker": maker, "line": line, "change": change, "frozen": frozen_line}


@pytest.mark.parametrize(("role", "expected"), [
    ("credit_officer", {"propose_change", "propose_unfreeze"}),
    ("credit_approver", {"approve", "reject", "freeze"}),
    ("operations", set()),
    ("finance", set()),
    ("auditor", set()),
])
def test_each_role_sees_only_its_buttons(queue_objects, user_in_role, role, expected):
    response = _client(user_in_role(role)).get(reverse("console:queues"))
    assert response.status_code == 200
    assert _buttons(response.content.decode()) == expected


def test_checker_approves_from_the_queue_through_the_admin_action(queue_objects, user_in_role):
    checker = _client(user_in_role("credit_approver"))
    changelist = reverse("admin:funding_creditlinechangerequest_changelist")
    change = queue_objects["change"]
    form = checker.post(changelist, {"action": "approve", "_selected_action": [change.pk]})
    assert form.status_code == 200 and b'name="apply"' in form.content  # the reason form of the action
    done = checker.post(changelist, {"action": "approve", "_selected_action": [change.pk], "apply": "1",
                                     "reason": "ok"}, follow=True)
    assert "Requests approved: 1." in [str(m) for m in done.context["messages"]]
    change.refresh_from_db()
    queue_objects["line"].refresh_from_db()
    assert change.status == ChangeRequestStatus.APPROVED
    assert queue_objects["line"].approved_limit == Decimal("2000000.00")


def test_maker_holding_both_roles_is_refused_on_own_request(queue_objects):
    from django.contrib.auth.models import Group

    maker = queue_objects["maker"]
    maker.groups.add(Group.objects.get(name="credit_approver"))
    client = _client(maker)
    html = client.get(reverse("console:queues")).content.decode()
    assert {"approve", "reject"} <= _buttons(html)
    done = client.post(reverse("admin:funding_creditlinechangerequest_changelist"),
                       {"action": "approve", "_selected_action": [queue_objects["change"].pk], "apply": "1",
                        "reason": "mine"}, follow=True)
    texts = [str(m) for m in done.context["messages"]]
    assert len(texts) == 1 and "four_eyes" in texts[0], texts
    queue_objects["change"].refresh_from_db()
    assert queue_objects["change"].status == ChangeRequestStatus.PENDING


def test_operations_redeliver_a_failed_webhook_from_the_queue(business_day, user_in_role):
    company, _line = company_with_line()
    event = WebhookEvent.objects.filter(company=company).first()
    assert event is not None
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEventStatus.FAILED, attempt_count=9)
    ops = _client(user_in_role("operations"))
    html = ops.get(reverse("console:queues")).content.decode()
    assert _buttons(html) == {"redeliver"} and event.public_id in html
    ops.post(reverse("admin:api_webhookoutboxevent_changelist"),
             {"action": "redeliver", "_selected_action": [event.pk]}, follow=True)
    event.refresh_from_db()
    assert (event.status, event.attempt_count) == (WebhookEventStatus.PENDING, 0)


def test_auditor_sees_last_logins_and_failed_attempts(user_in_role):
    auditor = user_in_role("auditor")
    officer = user_in_role("credit_officer")
    anonymous = Client()
    login_url = reverse("admin:login")
    for _ in range(2):
        anonymous.post(login_url, {"username": officer.username, "password": "wrong"})
    anonymous.post(login_url, {"username": "ghost", "password": "wrong"})
    assert Client().post(login_url, {"username": auditor.username, "password": "correct horse battery",
                                     "next": reverse("admin:index")}).status_code == 302
    assert LoginFailure.objects.filter(username=officer.username).count() == 2
    response = _client(auditor).get(reverse("console:sign_ins"))
    assert response.status_code == 200
    staff = {s.username: s for s in response.context["staff"]}
    assert staff[officer.username].failures_recent == 2 and staff[officer.username].last_login is None
    assert staff[auditor.username].last_login is not None and staff[auditor.username].failures_recent == 0
    assert [f.username for f in response.context["failures"]] == ["ghost", officer.username, officer.username]
    assert _client(auditor).get(reverse("admin:console_loginfailure_changelist")).status_code == 200
    for role in ("credit_officer", "credit_approver", "operations", "finance"):
        user = user_in_role(role, username=f"{role}-2")
        assert _client(user).get(reverse("console:sign_ins")).status_code == 403
        assert _client(user).get(reverse("admin:console_loginfailure_changelist")).status_code == 403


def test_an_action_started_from_the_queue_returns_to_the_queue(queue_objects, user_in_role):
    checker = _client(user_in_role("credit_approver"))
    changelist = reverse("admin:funding_creditlinechangerequest_changelist")
    pk = queue_objects["change"].pk
    queue = "/admin/console/queues/"
    form = checker.post(changelist, {"action": "reject", "_selected_action": [pk], "next": queue})
    assert b'name="next" value="/admin/console/queues/"' in form.content
    done = checker.post(changelist, {"action": "reject", "_selected_action": [pk], "apply": "1",
                                     "reason": "no", "next": queue})
    assert done.status_code == 302 and done["Location"] == "/admin/console/queues/"
    elsewhere = checker.post(changelist, {"action": "reject", "_selected_action": [pk], "apply": "1",
                                          "reason": "no", "next": "https://evil.example/"})
    assert elsewhere.status_code == 302 and elsewhere["Location"] == changelist  # the admin's own default
