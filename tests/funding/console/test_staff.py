"""staff_create: the first staff users of an installation, from the command line."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from funding.console.roles import CREDIT_APPROVER, CREDIT_OFFICER
from funding.console.staff import staff_user_create
from funding.errors import ValidationFailed
from funding.models import AuditEvent

pytestmark = pytest.mark.django_db
STRONG = "correct-horse-battery-staple-42"


def test_creates_a_staff_user_with_its_roles_and_an_audit_row(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(STRONG + "\n"))
    out = io.StringIO()
    call_command("staff_create", "alice", "--role", CREDIT_OFFICER, "--role", CREDIT_APPROVER,
                 "--email", "alice@bank.example", "--password-stdin", stdout=out)
    assert out.getvalue() == "staff user alice created (roles: credit_approver, credit_officer; superuser: False)\n"
    user = User.objects.get(username="alice")
    assert (user.is_staff, user.is_superuser, user.email) == (True, False, "alice@bank.example")
    assert user.check_password(STRONG)
    assert sorted(user.groups.values_list("name", flat=True)) == [CREDIT_APPROVER, CREDIT_OFFICER]
    audit = AuditEvent.objects.get(action="staff.created")
    assert (audit.actor_label, audit.object_id) == ("manage.py staff_create", str(user.pk))
    assert audit.after == {"username": "alice", "roles": [CREDIT_APPROVER, CREDIT_OFFICER], "superuser": False}


def test_a_superuser_needs_no_role(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(STRONG + "\n"))
    call_command("staff_create", "it-admin", "--superuser", "--password-stdin", stdout=io.StringIO())
    user = User.objects.get(username="it-admin")
    assert (user.is_staff, user.is_superuser, user.groups.count()) == (True, True, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "314159265358979"}, "password"),  # entirely numeric
        ({"roles": []}, "roles"),
        ({"roles": ["root"]}, "roles"),
    ],
)
def test_refusals_create_nothing(kwargs, field):
    arguments = {"username": "alice", "password": STRONG, "roles": [CREDIT_OFFICER], "actor_label": "test"}
    with pytest.raises(ValidationFailed) as refused:
        staff_user_create(**{**arguments, **kwargs})
    assert list(refused.value.details) == [field]
    assert not User.objects.filter(username="alice").exists()
    assert not AuditEvent.objects.filter(action="staff.created").exists()


def test_an_existing_username_is_refused_and_left_as_it_was(monkeypatch):
    staff_user_create(username="alice", password=STRONG, roles=[CREDIT_OFFICER], actor_label="test")
    monkeypatch.setattr("sys.stdin", io.StringIO("another-long-password-77\n"))
    with pytest.raises(CommandError, match="username: A user 'alice' already exists."):
        call_command("staff_create", "alice", "--role", CREDIT_APPROVER, "--password-stdin", stdout=io.StringIO())
    user = User.objects.get(username="alice")
    assert user.check_password(STRONG)
    assert list(user.groups.values_list("name", flat=True)) == [CREDIT_OFFICER]
    assert AuditEvent.objects.filter(action="staff.created").count() == 1
