"""Black box, contract 2.3: the year after the package's last one is published through calendar_propose and
calendar_approve (two different staff members), and the engine then advances and closes into it."""

import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from funding.errors import CalendarUnavailable
from funding.models import BusinessDay, CalendarChangeRequest, CalendarYear
from funding.services.advances import advance_request
from funding.services.calendar_publication import calendar_year_propose
from tests.factories import calendar_and_business_date, company_with_line, payout_inputs

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_2027 = ROOT / "tests" / "fixtures" / "calendar" / "2027-EXAMPLE-NOT-OFFICIAL.csv"


def _staff(username: str, role: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _advance(company, external_id: str):
    return advance_request(company=company, external_id=external_id, amount=Decimal("1000.00"),
                           payouts=payout_inputs("1000.00"))


@pytest.mark.django_db
def test_walk_to_new_years_eve_publish_2027_then_advance_and_close_into_it():
    calendar_and_business_date(current=date(2026, 12, 1))
    company, _ = company_with_line(daily_fee_rate="0.000300")
    _staff("ops.li", "operations")
    _staff("approver.wang", "credit_approver")

    while BusinessDay.objects.get().current < date(2026, 12, 31):
        _run("close_business_day")
    assert _run("business_date") == "2026-12-31\n"

    # Before publication: the due date would fall in 2027, so advances are refused and the close fails.
    with pytest.raises(CalendarUnavailable) as refused:
        _advance(company, "NYE-1")
    assert refused.value.code == "calendar_unavailable"
    assert "2027" in refused.value.message
    with pytest.raises(CommandError, match="2027"):
        _run("close_business_day")
    assert BusinessDay.objects.get().current == date(2026, 12, 31)

    out = _run("calendar_propose", "2027", str(EXAMPLE_2027), "--user", "ops.li", "--reason", "example notice")
    assert out.startswith("calendar 2027 proposed as #")
    assert "17 holidays, 5 make-up workdays, 249 business days" in out
    with pytest.raises(CommandError, match="^four_eyes_violation: "):
        _run("calendar_approve", "2027", "--user", "ops.li")
    assert not CalendarYear.objects.filter(year=2027).exists()

    out = _run("calendar_approve", "2027", "--user", "approver.wang")
    assert out == (f"calendar 2027 published from #{CalendarChangeRequest.objects.get().pk} (proposed by ops.li, "
                   "approved by approver.wang): 17 holidays, 5 make-up workdays, 249 business days\n")

    advance = _advance(company, "NYE-2")
    assert (advance.business_date, advance.due_date) == (date(2026, 12, 31), date(2027, 1, 4))
    _run("close_business_day")
    assert _run("business_date") == "2027-01-04\n"
    with pytest.raises(CommandError, match="^no_pending_proposal: "):
        _run("calendar_approve", "2027", "--user", "approver.wang")


@pytest.mark.django_db
def test_roles_decide_who_proposes_and_who_publishes(business_day):
    _staff("officer.zhao", "credit_officer")
    _staff("ops.li", "operations")
    _staff("approver.wang", "credit_approver")
    with pytest.raises(CommandError, match="^permission_denied: officer.zhao may not do this"):
        _run("calendar_propose", "2027", str(EXAMPLE_2027), "--user", "officer.zhao")
    with pytest.raises(CommandError, match="^permission_denied: approver.wang"):
        _run("calendar_propose", "2027", str(EXAMPLE_2027), "--user", "approver.wang")
    with pytest.raises(CommandError, match="^unknown_user: "):
        _run("calendar_propose", "2027", str(EXAMPLE_2027), "--user", "nobody")
    with pytest.raises(CommandError, match="^no_such_file: "):
        _run("calendar_propose", "2027", "/nonexistent.csv", "--user", "ops.li")
    _run("calendar_propose", "2027", str(EXAMPLE_2027), "--user", "ops.li")
    _staff("ops.zhou", "operations")  # another person, but not a checker
    with pytest.raises(CommandError, match="^permission_denied: ops.zhou"):
        _run("calendar_approve", "2027", "--user", "ops.zhou")
    assert not CalendarYear.objects.filter(year=2027).exists()


@pytest.mark.django_db
def test_a_bad_file_prints_each_line_and_exits_non_zero(business_day, tmp_path):
    _staff("ops.li", "operations")
    bad = tmp_path / "2027.csv"
    bad.write_text("date,kind\n2027-01-01,holiday\n2027-01-02,holiday\n2027-13-01,holiday\n", encoding="utf-8")
    err = StringIO()
    with pytest.raises(CommandError, match="^validation_error: The calendar file has errors; nothing was proposed"):
        call_command("calendar_propose", "2027", str(bad), "--user", "ops.li", stdout=StringIO(), stderr=err)
    assert err.getvalue() == (
        "line 3: 2027-01-02 is a Saturday: only a Monday to Friday can be a holiday (a weekend day is not a "
        "business day anyway).\n"
        "line 4: '2027-13-01' is not a date (YYYY-MM-DD).\n"
    )
    assert not CalendarChangeRequest.objects.exists()


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_proposer_approving_exits_non_zero_with_four_eyes_violation():
    calendar_and_business_date(current=date(2026, 12, 31))
    maker = _staff("ops.li", "operations")
    calendar_year_propose(year=2027, content=EXAMPLE_2027.read_bytes(), file_name=EXAMPLE_2027.name, maker=maker)
    env = {**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": _database_url(), "WEBHOOK_ENQUEUE_ON_COMMIT": "false"}
    done = subprocess.run([sys.executable, "manage.py", "calendar_approve", "2027", "--user", "ops.li"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "four_eyes_violation" in done.stderr
    assert done.stdout == ""
    assert not CalendarYear.objects.filter(year=2027).exists()
