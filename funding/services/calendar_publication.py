"""Publishing a calendar year from the State Council's notice, and changing single days: maker proposes, a
different staff member applies (contract 2.3). The engine never depends on a library release for a year.

A year's file is CSV, UTF-8, header `date,kind`; `kind` is `holiday` (a weekday that is not a business day)
or `workday` (a Saturday or Sunday that is one, 调休). Every other Monday to Friday is a business day and
every other Saturday and Sunday is not. Publication writes the whole year into the stored calendar and marks
it published in one transaction.
"""

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, NotFound, ValidationFailed
from funding.models import (
    BusinessDay,
    CalendarChangeKind,
    CalendarChangeRequest,
    CalendarChangeStatus,
    CalendarDay,
    CalendarDayKind,
    CalendarYear,
)
from funding.services.audit import audit_record
from funding.services.calendar import calendar_day_update

HOLIDAY, WORKDAY = "holiday", "workday"
HEADER = ["date", "kind"]
MAX_FILE_BYTES = 64 * 1024  # a year has 366 days; anything near this size is not a calendar file
FIRST_YEAR, LAST_YEAR = 2000, 2100
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class YearSummary:
    holidays: int
    workdays: int
    business_days: int


def _year_checked(year: int) -> int:
    if not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValidationFailed(details={"year": [f"Must be a year between {FIRST_YEAR} and {LAST_YEAR}."]})
    return year


def calendar_file_parse(*, year: int, content: bytes) -> list[dict[str, str]]:
    """The file's days as [{"date": "2027-01-01", "kind": "holiday"}, ...], sorted by date.

    Every problem is reported with its line number (`line N` in the details; the header is line 1); a file
    with any problem is refused as a whole.
    """
    _year_checked(year)
    if len(content) > MAX_FILE_BYTES:
        raise ValidationFailed(details={"file": [f"Larger than {MAX_FILE_BYTES} bytes: not a calendar file."]})
    try:
        text = content.decode("utf-8-sig")  # a byte-order mark (spreadsheet export) is tolerated
    except UnicodeDecodeError as exc:
        raise ValidationFailed(details={"file": ["Not UTF-8 text."]}) from exc
    if "\x00" in text:
        raise ValidationFailed(details={"file": ["Not a text file."]})
    reader = csv.reader(io.StringIO(text, newline=""))
    errors: dict[str, list[str]] = {}
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise ValidationFailed(details={"line 1": ["The header must be exactly: date,kind"]})
    days: dict[date, tuple[str, int]] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank lines (a trailing newline, an empty row) carry nothing
        problems = _row_problems(year, row, days)
        if problems:
            errors[f"line {line}"] = problems
            continue
        day = date.fromisoformat(row[0].strip())
        days[day] = (row[1].strip(), line)
    if errors:
        raise ValidationFailed("The calendar file has errors; nothing was proposed.", details=errors)
    if not days:
        raise ValidationFailed(details={"file": ["The file lists no holiday and no workday."]})
    return [{"date": day.isoformat(), "kind": kind} for day, (kind, _line) in sorted(days.items())]


def _row_problems(year: int, row: list[str], seen: dict[date, tuple[str, int]]) -> list[str]:
    if len(row) != 2:
        return [f"Expected 2 fields (date,kind), found {len(row)}."]
    raw_date, kind = row[0].strip(), row[1].strip()
    try:
        if len(raw_date) != 10:
            raise ValueError
        day = date.fromisoformat(raw_date)
    except ValueError:
        return [f"{raw_date[:20]!r} is not a date (YYYY-MM-DD)."]
    problems = []
    if day.year != year:
        problems.append(f"{day.isoformat()} is not in {year}.")
    if kind not in (HOLIDAY, WORKDAY):
        problems.append(f"kind must be holiday or workday, not {kind[:20]!r}.")
    elif kind == HOLIDAY and day.weekday() >= 5:
        problems.append(f"{day.isoformat()} is a {WEEKDAY_NAMES[day.weekday()]}: only a Monday to Friday can be "
                        "a holiday (a weekend day is not a business day anyway).")
    elif kind == WORKDAY and day.weekday() < 5:
        problems.append(f"{day.isoformat()} is a {WEEKDAY_NAMES[day.weekday()]}: only a Saturday or Sunday can "
                        "be a make-up workday.")
    if day in seen:
        problems.append(f"{day.isoformat()} is listed again (first on line {seen[day][1]}).")
    return problems


def calendar_year_days(*, year: int, exceptions: list[dict[str, str]]) -> list[tuple[date, str, bool]]:
    """Every day of the year as (date, CalendarDayKind, is_business_day), from the file's exceptions."""
    listed = {date.fromisoformat(e["date"]): e["kind"] for e in exceptions}
    exchange = settings.BUSINESS_CALENDAR == "exchange"  # exchanges stay shut on make-up Saturdays
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    days = []
    for offset in range((end - start).days):
        day = start + timedelta(days=offset)
        kind = listed.get(day)
        if kind == HOLIDAY:
            days.append((day, CalendarDayKind.HOLIDAY, False))
        elif kind == WORKDAY:
            days.append((day, CalendarDayKind.MAKEUP_WORKDAY, not exchange))
        elif day.weekday() >= 5:
            days.append((day, CalendarDayKind.WEEKEND, False))
        else:
            days.append((day, CalendarDayKind.WORKDAY, True))
    return days


def calendar_year_summary(*, year: int, exceptions: list[dict[str, str]]) -> YearSummary:
    days = calendar_year_days(year=year, exceptions=exceptions)
    return YearSummary(
        holidays=sum(1 for e in exceptions if e["kind"] == HOLIDAY),
        workdays=sum(1 for e in exceptions if e["kind"] == WORKDAY),
        business_days=sum(1 for _d, _k, business in days if business),
    )


def _history_problems(*, year: int, days: list[tuple[date, str, bool]]) -> dict[str, list[str]]:
    """A published day on or before the current business date never changes: due dates were computed from it."""
    business_day = BusinessDay.objects.first()
    if business_day is None or business_day.current.year < year:
        return {}
    if not CalendarYear.objects.filter(year=year, published=True).exists():
        return {}
    stored = {
        d.date: (d.kind, d.is_business_day)
        for d in CalendarDay.objects.filter(date__year=year, date__lte=business_day.current)
    }
    problems = {}
    for day, _kind, business in days:
        if day > business_day.current:
            break
        before = stored.get(day)
        if before is not None and before[1] != business:
            problems[day.isoformat()] = [
                f"On or before the current business date {business_day.current.isoformat()}: a published day "
                f"cannot change from {'business' if before[1] else 'non-business'} day to "
                f"{'business' if business else 'non-business'} day."
            ]
    return problems


def calendar_year_propose(
    *, year: int, content: bytes, file_name: str, maker: AbstractBaseUser, reason: str = "", replace: bool = False
) -> CalendarChangeRequest:
    """Propose publishing `year` from the file. A pending proposal of the year is refused unless `replace`
    (then it is withdrawn, audited). Nothing is published until a different staff member approves."""
    exceptions = calendar_file_parse(year=year, content=content)
    problems = _history_problems(year=year, days=calendar_year_days(year=year, exceptions=exceptions))
    if problems:
        raise ValidationFailed("The file would change days that are already history.", details=problems)
    summary = calendar_year_summary(year=year, exceptions=exceptions)
    digest = hashlib.sha256(content).hexdigest()
    try:
        with transaction.atomic():
            pending = (
                CalendarChangeRequest.objects.select_for_update()
                .filter(kind=CalendarChangeKind.PUBLISH_YEAR, year=year, status=CalendarChangeStatus.PENDING)
                .first()
            )
            if pending is not None:
                if not replace:
                    raise DuplicatePendingRequest(
                        f"Proposal #{pending.pk} of the {year} calendar is already pending; approve or reject it, "
                        "or propose again with --replace."
                    )
                pending.mark_withdrawn()
                pending.decided_at = timezone.now()
                pending.save(update_fields=["status", "decided_at"])
                audit_record(action="calendar_change.withdrawn", obj=pending, actor=maker,
                             before={"status": "pending"}, after={"status": "withdrawn"},
                             reason=f"replaced by a new proposal of {year}")
            request = CalendarChangeRequest.objects.create(
                kind=CalendarChangeKind.PUBLISH_YEAR, year=year, days=exceptions, file_name=file_name[:200],
                file_sha256=digest, maker=maker, maker_reason=reason,
            )
            audit_record(
                action="calendar_change.proposed", obj=request, actor=maker, reason=reason,
                after={"kind": request.kind, "year": year, "file": file_name[:200], "sha256": digest,
                       "holidays": summary.holidays, "workdays": summary.workdays,
                       "business_days": summary.business_days},
            )
    except IntegrityError as exc:
        if "funding_one_pending_calendar_year" in str(exc):
            raise DuplicatePendingRequest(f"A proposal of the {year} calendar is already pending.") from exc
        raise
    return request


DAY_KIND_BUSINESS = {
    CalendarDayKind.WORKDAY: {True},
    CalendarDayKind.MAKEUP_WORKDAY: {True, False},  # False: the exchange calendar
    CalendarDayKind.HOLIDAY: {False},
    CalendarDayKind.WEEKEND: {False},
}


def calendar_day_propose(
    *, day: date, kind: str, is_business_day: bool, name: str, maker: AbstractBaseUser, reason: str
) -> CalendarChangeRequest:
    """Propose changing one stored day (e.g. a holiday announced late). Applied only on a checker's approval."""
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    if kind not in CalendarDayKind.values:
        raise ValidationFailed(details={"kind": ["Not a valid kind."]})
    if is_business_day not in DAY_KIND_BUSINESS[kind]:
        raise ValidationFailed(details={"is_business_day": [
            f"A {CalendarDayKind(kind).label.lower()} {'cannot' if is_business_day else 'must'} be a business day."]})
    if len(name) > 100:
        raise ValidationFailed(details={"name": ["At most 100 characters."]})
    if not CalendarDay.objects.filter(date=day).exists():
        raise NotFound(f"{day.isoformat()} is not in the stored calendar; publish its year first.")
    _check_not_history(day)
    with transaction.atomic():
        request = CalendarChangeRequest.objects.create(
            kind=CalendarChangeKind.CHANGE_DAY, year=day.year, maker=maker, maker_reason=reason,
            days=[{"date": day.isoformat(), "kind": kind, "is_business_day": is_business_day, "name": name}],
        )
        audit_record(action="calendar_change.proposed", obj=request, actor=maker, reason=reason,
                     after={"kind": request.kind, "days": request.days})
    return request


def _check_not_history(day: date) -> None:
    business_day = BusinessDay.objects.first()
    if business_day is not None and day < business_day.current:
        raise ValidationFailed(details={"date": [
            f"{day.isoformat()} is before the current business date {business_day.current.isoformat()}: "
            "history does not change."]})


def _lock_pending(request: CalendarChangeRequest, checker: AbstractBaseUser) -> CalendarChangeRequest:
    request = CalendarChangeRequest.objects.select_for_update().get(pk=request.pk)
    if request.maker_id == checker.pk:
        raise FourEyesViolation("The proposer of a calendar change cannot approve or reject it.")
    if request.status != CalendarChangeStatus.PENDING:
        raise InvalidState(f"Calendar change #{request.pk} is already {request.status}.")
    return request


def calendar_change_approve(
    *, request: CalendarChangeRequest, checker: AbstractBaseUser, reason: str = ""
) -> CalendarChangeRequest:
    """A different staff member applies the proposal: a year is written whole and published in this one
    transaction; a day change is applied (and audited as calendar_day.updated)."""
    with transaction.atomic():
        request = _lock_pending(request, checker)
        if request.kind == CalendarChangeKind.PUBLISH_YEAR:
            summary = _publish_year(request, checker)
            after = {"status": "approved", "year": request.year, "holidays": summary.holidays,
                     "workdays": summary.workdays, "business_days": summary.business_days}
        else:
            for change in request.days:
                _check_not_history(date.fromisoformat(change["date"]))  # the business date may have moved
                calendar_day_update(
                    day=date.fromisoformat(change["date"]), kind=change["kind"],
                    is_business_day=change["is_business_day"], name=change["name"], actor=checker,
                    reason=f"calendar change #{request.pk}: {request.maker_reason}",
                )
            after = {"status": "approved", "days": request.days}
        request.mark_approved()
        request.checker = checker
        request.checker_reason = reason
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="calendar_change.approved", obj=request, actor=checker, before={"status": "pending"},
                     after=after, reason=reason)
    return request


def _publish_year(request: CalendarChangeRequest, checker: AbstractBaseUser) -> YearSummary:
    year = request.year
    entry, _ = CalendarYear.objects.select_for_update().get_or_create(
        year=year, defaults={"published": False, "source": ""}
    )
    days = calendar_year_days(year=year, exceptions=request.days)
    problems = _history_problems(year=year, days=days)  # the business date may have moved since the proposal
    if problems:
        raise ValidationFailed("The proposal would change days that are already history.", details=problems)
    source = f"calendar change #{request.pk}"
    CalendarDay.objects.bulk_create(
        [CalendarDay(date=day, kind=kind, is_business_day=business, name="", source=source, updated_by=checker)
         for day, kind, business in days],
        update_conflicts=True,
        unique_fields=["date"],
        update_fields=["kind", "is_business_day", "name", "source", "updated_by", "updated_at"],
    )
    before = {"published": entry.published, "source": entry.source}
    entry.published, entry.source = True, source
    entry.published_by, entry.published_at = checker, timezone.now()
    entry.save(update_fields=["published", "source", "published_by", "published_at", "updated_at"])
    summary = calendar_year_summary(year=year, exceptions=request.days)
    audit_record(action="calendar_year.published", obj=entry, actor=checker, before=before,
                 after={"published": True, "source": source, "sha256": request.file_sha256,
                        "holidays": summary.holidays, "workdays": summary.workdays,
                        "business_days": summary.business_days},
                 reason=request.maker_reason)
    return summary


def calendar_change_reject(
    *, request: CalendarChangeRequest, checker: AbstractBaseUser, reason: str
) -> CalendarChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        request = _lock_pending(request, checker)
        request.mark_rejected()
        request.checker = checker
        request.checker_reason = reason
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="calendar_change.rejected", obj=request, actor=checker, before={"status": "pending"},
                     after={"status": "rejected"}, reason=reason)
    return request
