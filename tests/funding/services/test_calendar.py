"""The stored business-day calendar: read from the database, editable by staff (audited), never guessed."""

from datetime import date

import pytest

from funding.errors import CalendarUnavailable, NotFound, ValidationFailed
from funding.models import AuditEvent, CalendarDay
from funding.services.calendar import calendar_day_update, is_business_day, next_business_day
from tests.factories import staff_user

pytestmark = pytest.mark.django_db


def test_next_business_day_from_the_stored_calendar(business_day):
    assert next_business_day(date(2026, 11, 27)) == date(2026, 11, 30)
    assert next_business_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert next_business_day(date(2026, 10, 9)) == date(2026, 10, 10)
    assert is_business_day(date(2026, 10, 10)) and not is_business_day(date(2026, 10, 1))


def test_unpublished_year_is_refused_not_guessed(business_day):
    with pytest.raises(CalendarUnavailable, match="2027"):
        next_business_day(date(2026, 12, 31))
    with pytest.raises(CalendarUnavailable):
        is_business_day(date(2027, 1, 4))


def test_a_day_missing_inside_a_published_year_is_refused_not_skipped(business_day):
    CalendarDay.objects.filter(date=date(2026, 11, 28)).delete()  # Saturday before Monday the 30th
    with pytest.raises(CalendarUnavailable) as info:
        next_business_day(date(2026, 11, 27))
    assert info.value.message == (
        "The business calendar for 2026 is not published: the next business day after 2026-11-27 "
        "cannot be determined."
    )


def test_forty_stored_days_without_a_business_day_are_refused(business_day):
    CalendarDay.objects.filter(date__gt=date(2026, 11, 1), date__lte=date(2026, 12, 11)).update(
        is_business_day=False
    )
    with pytest.raises(CalendarUnavailable) as info:
        next_business_day(date(2026, 11, 1))
    assert info.value.message == "No business day within 40 days after 2026-11-01."
    assert next_business_day(date(2026, 11, 4)) == date(2026, 12, 14)  # the 40th day after it, a Monday


def test_staff_edit_changes_the_next_business_day_and_is_audited(business_day):
    staff = staff_user("ops")
    calendar_day_update(day=date(2026, 11, 26), kind="holiday", is_business_day=False, name="Typhoon closure",
                        actor=staff, reason="PBoC notice 2026-88")
    day = CalendarDay.objects.get(date=date(2026, 11, 26))
    assert (day.kind, day.is_business_day, day.source, day.updated_by) == ("holiday", False, "staff", staff)
    assert next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)
    audit = AuditEvent.objects.get(action="calendar_day.updated")
    assert (audit.actor, audit.object_id, audit.reason) == (staff, "2026-11-26", "PBoC notice 2026-88")
    assert audit.before == {"kind": "workday", "is_business_day": True, "name": "",
                            "source": "chinese-calendar"}
    assert audit.after == {"kind": "holiday", "is_business_day": False, "name": "Typhoon closure",
                           "source": "staff"}


def test_staff_edit_needs_a_reason_and_a_stored_day(business_day):
    with pytest.raises(ValidationFailed):
        calendar_day_update(day=date(2026, 11, 26), kind="holiday", is_business_day=False, name="",
                            actor=staff_user(), reason=" ")
    with pytest.raises(NotFound):
        calendar_day_update(day=date(2027, 1, 4), kind="workday", is_business_day=True, name="",
                            actor=staff_user(), reason="x")
    assert not AuditEvent.objects.filter(action="calendar_day.updated").exists()
