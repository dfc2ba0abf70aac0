"""seed_demo gives `make run` everything a demo needs: channels, staff in their role groups, credentials."""

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from funding.console.roles import ROLES
from settlement.models import Channel

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_channels_and_staff_in_their_groups(tmp_path):
    out = io.StringIO()
    target = tmp_path / "demo.json"
    call_command("seed_demo", "--json", "--json-file", str(target), stdout=out)
    data = json.loads(out.getvalue())  # stdout holds the JSON object only
    assert set(data) == {"base_url", "business_date", "companies", "staff"}
    assert json.loads(target.read_text()) == data
    assert target.stat().st_mode & 0o777 == 0o600
    assert set(Channel.objects.values_list("code", flat=True)) == {"BEPS", "HVPS", "IBPS", "INTERNAL"}
    for entry in data["staff"]:
        assert set(entry) == {"username", "password", "role"}
        user = User.objects.get(username=entry["username"])
        assert user.is_staff and user.is_active and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [entry["role"]]
        assert user.check_password(entry["password"])
    assert {entry["role"] for entry in data["staff"]} == set(ROLES)
    for company in data["companies"]:
        assert set(company) == {"code", "api_key", "api_secret", "webhook_secret", "settlement_account",
                                "approved_limit"}


def test_seed_demo_prints_the_console_url_and_logins():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "staff console: http://127.0.0.1:8000/admin/" in text
    assert "channels: BEPS, HVPS, IBPS, INTERNAL" in text
    assert "staff demo_auditor (auditor): password demo-auditor-" in text


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_seed_demo_refuses_outside_local_runs_and_creates_nothing(settings, environment):
    from django.core.management.base import CommandError

    settings.DJANGO_ENV, settings.LOCAL_RUN = environment, False
    with pytest.raises(CommandError, match=f"seed_demo refused: DJANGO_ENV={environment}"):
        call_command("seed_demo", "--json", stdout=io.StringIO())
    assert User.objects.count() == 0
    assert Channel.objects.count() == 0
