"""Publishing a calendar year and changing days under four eyes (contract 2.3): exact days, refusals, audit."""

from datetime import date
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import AuditEvent, BusinessDay, CalendarChangeRequest, CalendarDay, CalendarYear
from funding.services.calendar import calendar_seed_year, next_business_day
from funding.services.calendar_publication import (
    calendar_change_approve,
    calendar_change_reject,
    calendar_day_propose,
    calendar_file_parse,
    calendar_year_propose,
)
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

EXAMPLE_2027 = Path(__file__).resolve().parents[2] / "fixtures" / "calendar" / "2027-EXAMPLE-NOT-OFFICIAL.csv"


def _csv(*lines: str) -> bytes:
    return ("\n".join(["date,kind", *lines]) + "\n").encode()


def test_the_file_lists_exceptions_and_every_other_day_follows_its_weekday(business_day):
    maker, checker = staff_user("maker"), staff_user("checker")
    proposal = calendar_year_propose(year=2027, content=EXAMPLE_2027.read_bytes(), file_name=EXAMPLE_2027.name,
                                     maker=maker, reason="example")
    assert not CalendarYear.objects.filter(year=2027).exists()  # nothing before the second person
    assert not CalendarDay.objects.filter(date__year=2027).exists()

    calendar_change_approve(request=proposal, checker=checker)

    year = CalendarYear.objects.get(year=2027)
    assert (year.published, year.source, year.published_by) == (True, f"calendar change #{proposal.pk}", checker)
    days = {d.date: (d.kind, d.is_business_day) for d in CalendarDay.objects.filter(date__year=2027)}
    assert len(days) == 365
    assert days[date(2027, 1, 1)] == ("holiday", False)  # a Friday
    assert days[date(2027, 1, 2)] == ("weekend", False)
    assert days[date(2027, 1, 4)] == ("workday", True)  # Monday, not listed
    assert days[date(2027, 2, 20)] == ("makeup_workday", True)  # a Saturday listed as workday
    assert days[date(2027, 2, 13)] == ("weekend", False)
    assert sum(business for _kind, business in days.values()) == 261 - 17 + 5  # weekdays - holidays + workdays
    assert next_business_day(date(2026, 12, 31)) == date(2027, 1, 4)
    assert next_business_day(date(2027, 2, 4)) == date(2027, 2, 12)  # after the festival's holidays and weekend
    actions = list(AuditEvent.objects.filter(object_type__in=["funding.calendarchangerequest",
                                                              "funding.calendaryear"])
                   .order_by("id").values_list("action", "actor_label"))
    assert actions == [("calendar_change.proposed", "maker"), ("calendar_year.published", "checker"),
                       ("calendar_change.approved", "checker")]
    published = AuditEvent.objects.get(action="calendar_year.published")
    assert published.after == {"published": True, "source": f"calendar change #{proposal.pk}",
                               "sha256": proposal.file_sha256, "holidays": 17, "workdays": 5,
                               "business_days": 249}


def test_the_proposer_can_never_approve_or_reject_their_own_proposal(business_day):
    maker = staff_user()
    proposal = calendar_year_propose(year=2027, content=_csv("2027-01-01,holiday"), file_name="f.csv", maker=maker)
    with pytest.raises(FourEyesViolation) as info:
        calendar_change_approve(request=proposal, checker=maker)
    assert info.value.code == "four_eyes_violation"
    with pytest.raises(FourEyesViolation):
        calendar_change_reject(request=proposal, checker=maker, reason="mine")
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    assert not CalendarYear.objects.filter(year=2027).exists()
    # The database refuses it too, whatever the code does.
    with pytest.raises(IntegrityError, match="funding_calendar_checker_is_not_maker"), transaction.atomic():
        CalendarChangeRequest.objects.filter(pk=proposal.pk).update(checker=maker)


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_proposed(business_day):
    content = _csv(
        "2027-01-01,holiday",  # line 2: fine
        "2027-01-02,holiday",  # line 3: a Saturday
        "2027-01-04,workday",  # line 4: a Monday
        "2027-02-30,holiday",  # line 5: no such date
        "2028-01-03,holiday",  # line 6: another year
        "2027-01-05,day off",  # line 7: unknown kind
        "2027-01-01,holiday",  # line 8: again
        "2027-01-06",  # line 9: one field
        "",  # line 10: blank, ignored
    )
    with pytest.raises(ValidationFailed) as info:
        calendar_year_propose(year=2027, content=content, file_name="bad.csv", maker=staff_user())
    assert info.value.details == {
        "line 3": ["2027-01-02 is a Saturday: only a Monday to Friday can be a holiday (a weekend day is not a "
                   "business day anyway)."],
        "line 4": ["2027-01-04 is a Monday: only a Saturday or Sunday can be a make-up workday."],
        "line 5": ["'2027-02-30' is not a date (YYYY-MM-DD)."],
        "line 6": ["2028-01-03 is not in 2027."],
        "line 7": ["kind must be holiday or workday, not 'day off'."],
        "line 8": ["2027-01-01 is listed again (first on line 2)."],
        "line 9": ["Expected 2 fields (date,kind), found 1."],
    }
    assert not CalendarChangeRequest.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="calendar").exists()


@pytest.mark.parametrize(
    ("content", "details"),
    [
        (b"day,kind\n2027-01-01,holiday\n", {"line 1": ["The header must be exactly: date,kind"]}),
        (b"", {"line 1": ["The header must be exactly: date,kind"]}),
        (b"date,kind\n", {"file": ["The file lists no holiday and no workday."]}),
        (b"date,kind\n2027-01-01,holiday\n\xff\n", {"file": ["Not UTF-8 text."]}),
        (b"date,kind\n" + b"2027-01-01,holiday\n" * 5000, {"file": ["Larger than 65536 bytes: not a calendar file."]}),
    ],
)
def test_the_file_format_is_exactly_date_kind(content, details):
    with pytest.raises(ValidationFailed) as info:
        calendar_file_parse(year=2027, content=content)
    assert info.value.details == details


def test_a_byte_order_mark_and_spaces_are_tolerated():
    days = calendar_file_parse(year=2027, content=b"\xef\xbb\xbfdate, kind\r\n 2027-10-09 , workday\r\n")
    assert days == [{"date": "2027-10-09", "kind": "workday"}]


def test_one_pending_proposal_per_year_unless_replaced_and_rejection_needs_a_reason(business_day):
    maker, other, checker = staff_user(), staff_user(), staff_user()
    first = calendar_year_propose(year=2027, content=_csv("2027-01-01,holiday"), file_name="a.csv", maker=maker)
    with pytest.raises(DuplicatePendingRequest):
        calendar_year_propose(year=2027, content=_csv("2027-01-01,holiday"), file_name="b.csv", maker=other)
    second = calendar_year_propose(year=2027, content=_csv("2027-01-01,holiday", "2027-02-05,holiday"),
                                   file_name="c.csv", maker=other, replace=True)
    first.refresh_from_db()
    assert (first.status, second.status) == ("withdrawn", "pending")
    with pytest.raises(InvalidState):
        calendar_change_approve(request=first, checker=checker)
    with pytest.raises(ValidationFailed):
        calendar_change_reject(request=second, checker=checker, reason=" ")
    calendar_change_reject(request=second, checker=checker, reason="not the notice")
    second.refresh_from_db()
    assert (second.status, second.checker, second.checker_reason) == ("rejected", checker, "not the notice")
    assert not CalendarYear.objects.filter(year=2027).exists()


def _stored_year_as_file(year: int) -> list[str]:
    """The stored year in the file's terms: weekdays that are not business days, weekend days that are."""
    lines = []
    for day in CalendarDay.objects.filter(date__year=year).order_by("date"):
        if day.date.weekday() < 5 and not day.is_business_day:
            lines.append(f"{day.date.isoformat()},holiday")
        elif day.date.weekday() >= 5 and day.is_business_day:
            lines.append(f"{day.date.isoformat()},workday")
    return lines


def test_republishing_never_changes_a_day_that_is_already_history(business_day):
    # Business date 2026-11-25; 2026 is published from chinese-calendar. 2026-10-09 was a business day.
    stored = _stored_year_as_file(2026)
    assert "2026-10-01,holiday" in stored and "2026-10-10,workday" in stored
    with pytest.raises(ValidationFailed) as info:
        calendar_year_propose(year=2026, content=_csv(*stored, "2026-10-09,holiday"), file_name="x.csv",
                              maker=staff_user())
    assert info.value.details == {"2026-10-09": [
        "On or before the current business date 2026-11-25: a published day cannot change from business day to "
        "non-business day."]}
    # The same past, and a new holiday ahead: accepted and published.
    proposal = calendar_year_propose(year=2026, content=_csv(*stored, "2026-12-24,holiday"), file_name="y.csv",
                                     maker=staff_user())
    calendar_change_approve(request=proposal, checker=staff_user())
    assert CalendarDay.objects.get(date=date(2026, 12, 24)).is_business_day is False
    assert next_business_day(date(2026, 12, 23)) == date(2026, 12, 25)
    assert next_business_day(date(2026, 9, 30)) == date(2026, 10, 8)  # the past as it was
    # seed_calendar no longer touches a year published from the notice.
    assert calendar_seed_year(year=2026) == 0
    assert CalendarDay.objects.get(date=date(2026, 12, 24)).kind == "holiday"


def test_a_day_change_is_a_proposal_until_another_person_approves_it(business_day):
    maker, checker = staff_user("ops1"), staff_user("ops2")
    proposal = calendar_day_propose(day=date(2026, 11, 26), kind="holiday", is_business_day=False,
                                    name="Typhoon closure", maker=maker, reason="PBoC notice 2026-88")
    assert CalendarDay.objects.get(date=date(2026, 11, 26)).is_business_day is True
    assert next_business_day(date(2026, 11, 25)) == date(2026, 11, 26)
    with pytest.raises(FourEyesViolation):
        calendar_change_approve(request=proposal, checker=maker)

    calendar_change_approve(request=proposal, checker=checker)

    day = CalendarDay.objects.get(date=date(2026, 11, 26))
    assert (day.kind, day.is_business_day, day.source, day.updated_by) == ("holiday", False, "staff", checker)
    assert next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)
    applied = AuditEvent.objects.get(action="calendar_day.updated")
    assert (applied.actor, applied.reason) == (checker, f"calendar change #{proposal.pk}: PBoC notice 2026-88")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"day": date(2026, 11, 24)}, "date"),  # before the business date
        ({"kind": "holiday", "is_business_day": True}, "is_business_day"),
        ({"kind": "workday", "is_business_day": False}, "is_business_day"),
        ({"kind": "nonsense"}, "kind"),
        ({"reason": " "}, "reason"),
    ],
)
def test_a_day_change_is_checked_when_proposed(business_day, kwargs, field):
    values = {"day": date(2026, 11, 26), "kind": "holiday", "is_business_day": False, "name": "",
              "maker": staff_user(), "reason": "why", **kwargs}
    with pytest.raises(ValidationFailed) as info:
        calendar_day_propose(**values)
    assert list(info.value.details) == [field]
    assert not CalendarChangeRequest.objects.exists()


def test_a_day_that_became_history_before_approval_is_refused(business_day):
    proposal = calendar_day_propose(day=date(2026, 11, 26), kind="holiday", is_business_day=False, name="",
                                    maker=staff_user(), reason="why")
    BusinessDay.objects.update(current=date(2026, 11, 27))  # the day passed meanwhile
    with pytest.raises(ValidationFailed) as info:
        calendar_change_approve(request=proposal, checker=staff_user())
    assert list(info.value.details) == ["date"]
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    assert CalendarDay.objects.get(date=date(2026, 11, 26)).is_business_day is True
