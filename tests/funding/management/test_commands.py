"""The business_date and seed_calendar management commands."""

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from funding.models import BusinessDay, CalendarDay, CalendarYear
from funding.services.calendar import business_date_initialize, calendar_day_update, next_business_day
from tests.factories import staff_user

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_business_date_unset_fails_with_a_clear_message():
    with pytest.raises(CommandError, match="business date has not been set"):
        call_command("business_date")


def test_business_date_prints_the_iso_date():
    business_date_initialize(current=date(2026, 11, 25))
    assert _run("business_date") == "2026-11-25\n"


def test_seed_calendar_stores_covered_years_and_names_the_unpublished_one():
    out = _run("seed_calendar")
    assert "2026: 365 days stored from chinese-calendar 1.11.0" in out
    assert "2004: 366 days stored" in out
    assert "2027: not published by chinese-calendar 1.11.0" in out
    published = set(CalendarYear.objects.filter(published=True).values_list("year", flat=True))
    assert published == set(range(2004, 2027))
    assert not CalendarYear.objects.filter(year=2027).exists()
    national_day = CalendarDay.objects.get(date=date(2026, 10, 1))
    assert (national_day.kind, national_day.is_business_day, national_day.name) == (
        "holiday", False, "National Day")
    makeup = CalendarDay.objects.get(date=date(2026, 10, 10))
    assert (makeup.kind, makeup.is_business_day) == ("makeup_workday", True)


def test_seed_calendar_keeps_staff_edits_and_reports_requested_unpublished_years():
    _run("seed_calendar", "--year", "2026")
    calendar_day_update(day=date(2026, 11, 26), kind="holiday", is_business_day=False, name="Bank holiday",
                        actor=staff_user(), reason="regulator notice")
    out = _run("seed_calendar", "--year", "2026", "--year", "2030")
    assert "2030: not published" in out
    edited = CalendarDay.objects.get(date=date(2026, 11, 26))
    assert (edited.kind, edited.is_business_day, edited.source) == ("holiday", False, "staff")
    assert next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)
    assert CalendarDay.objects.filter(date__year=2026).count() == 365


def test_business_date_initialize_sets_the_first_date_once():
    _run("seed_calendar", "--year", "2026")
    assert _run("business_date", "--initialize", "2026-11-25") == "2026-11-25\n"
    assert _run("business_date", "--initialize", "2026-11-25") == "2026-11-25\n"  # the same again: no change
    with pytest.raises(CommandError, match="already 2026-11-25; only end of day moves it"):
        call_command("business_date", "--initialize", "2026-11-26")
    assert BusinessDay.objects.get().current == date(2026, 11, 25)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-10-01", "2026-10-01 is not a business day"),  # National Day
        ("2031-03-03", "2031 has no published calendar: run `manage.py seed_calendar`"),
        ("2026-13-01", "'2026-13-01' is not a date"),
    ],
)
def test_business_date_initialize_refuses_a_day_that_is_not_a_business_day(value, message):
    _run("seed_calendar", "--year", "2026")
    with pytest.raises(CommandError, match=message):
        call_command("business_date", "--initialize", value)
    assert not BusinessDay.objects.exists()
