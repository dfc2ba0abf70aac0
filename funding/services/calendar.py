"""Business date and the mainland-China business-day calendar (stored in the database, seeded from a package)."""

from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from funding import selectors
from funding.errors import CalendarUnavailable, NotFound, ValidationFailed
from funding.models import BusinessDay, CalendarDay, CalendarDayKind, CalendarYear
from funding.services.audit import audit_record


def business_date_current() -> date:
    day = BusinessDay.objects.first()
    if day is None:
        raise CalendarUnavailable("The business date has not been set (run seed_demo or business_date_initialize).")
    return day.current


# The "day is open" lock: every advance request holds it SHARED until its COMMIT (advance_reserve()); marking
# the day closing takes it EXCLUSIVE, so end of day waits for the requests in flight and requests arriving
# meanwhile wait for it, then see `closing`. An advisory lock and not FOR SHARE on the business day's row:
# many concurrent sharers of one row make PostgreSQL write a MultiXact per combination, which cost more than
# any other statement of a request (docs/benchmarks.md). Keep in step with funding/sql/advance_reserve.py.
BUSINESS_DAY_LOCK = (0x1DE1, 1)


def business_day_mark_closing(*, day: BusinessDay) -> None:
    """Refuse new advances from now on; returns once every request in flight has committed or rolled back.

    Must run in the transaction that starts end of day: the lock is held until it commits.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("business_day_mark_closing must run inside a transaction")
    with transaction.get_connection().cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(BUSINESS_DAY_LOCK))
    BusinessDay.objects.filter(pk=day.pk).update(closing=True, updated_at=timezone.now())


def business_date_initialize(*, current: date) -> BusinessDay:
    """Set the business date once, when the engine is installed. Later it moves only by end of day."""
    day, _ = BusinessDay.objects.get_or_create(singleton=True, defaults={"current": current})
    return day


def calendar_seed_year(*, year: int) -> int:
    """Store one year's days from the `chinese-calendar` package. Returns the number of days written.

    A year the package does not cover is left unpublished: the engine then refuses to guess.
    Days staff already edited (source 'staff') are kept, and a year published from the State Council's
    notice under four eyes (funding.services.calendar_publication) is not touched at all: returns 0.
    """
    import chinese_calendar

    if calendar_year_published_by_staff(year=year):
        return 0

    start = date(year, 1, 1)
    days = []
    try:
        for offset in range((date(year + 1, 1, 1) - start).days):
            day = start + timedelta(days=offset)
            working = chinese_calendar.is_workday(day)
            on_holiday, holiday_name = chinese_calendar.get_holiday_detail(day)
            if working and day.weekday() >= 5:
                kind, name = CalendarDayKind.MAKEUP_WORKDAY, str(holiday_name or "")
            elif working:
                kind, name = CalendarDayKind.WORKDAY, ""
            elif holiday_name:
                kind, name = CalendarDayKind.HOLIDAY, str(holiday_name)
            else:
                kind, name = CalendarDayKind.WEEKEND, ""
            if settings.BUSINESS_CALENDAR == "exchange" and kind == CalendarDayKind.MAKEUP_WORKDAY:
                working = False
            days.append(CalendarDay(date=day, kind=kind, is_business_day=working, name=name, source="chinese-calendar"))
    except NotImplementedError:
        return 0
    with transaction.atomic():
        staff_edited = set(
            CalendarDay.objects.filter(date__year=year, source="staff").values_list("date", flat=True)
        )
        CalendarDay.objects.bulk_create(
            [d for d in days if d.date not in staff_edited],
            update_conflicts=True,
            unique_fields=["date"],
            update_fields=["kind", "is_business_day", "name", "source"],
        )
        CalendarYear.objects.update_or_create(
            year=year, defaults={"published": True, "source": "chinese-calendar"}
        )
    return len(days)


def calendar_year_published_by_staff(*, year: int) -> bool:
    return CalendarYear.objects.filter(year=year, published=True).exclude(source="chinese-calendar").exists()


def calendar_day_update(
    *, day: date, kind: str, is_business_day: bool, name: str, actor: AbstractBaseUser, reason: str
) -> CalendarDay:
    """Apply a correction of one stored day (e.g. an extra holiday announced late). Reseeding keeps it.

    Staff propose it (calendar_publication.calendar_day_propose) and a different staff member's approval
    applies it through here; `actor` is the approver.
    """
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    if kind not in CalendarDayKind.values:
        raise ValidationFailed(details={"kind": ["Not a valid kind."]})
    with transaction.atomic():
        entry = CalendarDay.objects.select_for_update().filter(date=day).first()
        if entry is None:
            raise NotFound(f"{day.isoformat()} is not in the stored calendar; seed its year first.")
        before = {"kind": entry.kind, "is_business_day": entry.is_business_day, "name": entry.name,
                  "source": entry.source}
        entry.kind, entry.is_business_day, entry.name = kind, is_business_day, name
        entry.source, entry.updated_by = "staff", actor
        entry.save(update_fields=["kind", "is_business_day", "name", "source", "updated_by",
                                  "updated_at"])
        audit_record(action="calendar_day.updated", obj=entry, actor=actor, before=before,
                     after={"kind": kind, "is_business_day": is_business_day, "name": name,
                            "source": "staff"},
                     reason=reason)
    return entry


# The business-day rules only read; their one definition is in funding.selectors (re-exported for callers that
# take them with the calendar's services, and named by calendar_next_business_day's comment).
calendar_unavailable = selectors.calendar_unavailable
is_business_day = selectors.is_business_day
next_business_day = selectors.next_business_day
