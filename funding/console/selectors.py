"""Reads for the console dashboard. Each returns plain data; the view only renders it."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, DecimalField, Max, Min, Q, Sum
from django.utils import timezone

from funding.console.reports import percent, receivable_movements, success_rate_percent
from funding.models import (
    LIVE_LINE_STATES,
    AuditEvent,
    BusinessDay,
    CalendarChangeRequest,
    CalendarChangeStatus,
    CalendarDay,
    CalendarYear,
    ChangeRequestStatus,
    Company,
    CompanyChangeRequest,
    CompanyChangeStatus,
    CreditLine,
    CreditLineChangeRequest,
    Payout,
    PayoutStatus,
    WebhookEvent,
    WebhookEventStatus,
)
from funding.selectors import business_days_up_to, overdue_owed_by_company
from ledger.money import ZERO, money
from settlement.models import AttemptStatus, MarginSetOff, MarginSetOffStatus, PayoutAttempt
from settlement.services.channels import SUCCESS_RATE_COUNTS

MONEY_OUTPUT = DecimalField(
    max_digits=settings.MONEY_MAX_DIGITS + 2, decimal_places=settings.MONEY_DECIMAL_PLACES
)


@dataclass(frozen=True)
class BusinessDateInfo:
    current: date | None
    closing: bool
    cutoff_at: datetime | None
    seconds_to_cutoff: int | None  # negative once the cut-off has passed

    @property
    def cutoff_passed(self) -> bool:
        return self.seconds_to_cutoff is not None and self.seconds_to_cutoff < 0

    @property
    def countdown(self) -> str:
        if self.seconds_to_cutoff is None:
            return ""
        seconds = abs(self.seconds_to_cutoff)
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


def cutoff_time() -> time:
    hours, _, minutes = str(settings.EOD_CUTOFF_TIME).partition(":")
    return time(int(hours), int(minutes or 0))


def business_date_info(*, now: datetime | None = None) -> BusinessDateInfo:
    """The business date and the time left until its end-of-day cut-off (EOD_CUTOFF_TIME, local time)."""
    now = now or timezone.now()
    day = BusinessDay.objects.first()
    if day is None:
        return BusinessDateInfo(current=None, closing=False, cutoff_at=None, seconds_to_cutoff=None)
    cutoff_at = datetime.combine(day.current, cutoff_time(), tzinfo=ZoneInfo(settings.TIME_ZONE))
    return BusinessDateInfo(
        current=day.current,
        closing=day.closing,
        cutoff_at=cutoff_at,
        seconds_to_cutoff=int((cutoff_at - now).total_seconds()),
    )


@dataclass(frozen=True)
class CompanyExposure:
    company_id: int
    code: str
    legal_name: str
    line_status: str
    approved_limit: Decimal
    effective_limit: Decimal
    reserved: Decimal
    outstanding: Decimal
    available: Decimal
    utilisation: Decimal | None  # percent of the effective limit in use (reserved + outstanding)
    overdue: Decimal


def company_exposures() -> list[CompanyExposure]:
    """Per company, its live credit line's figures and what its overdue advances still owe. `available` is
    what an advance may still take today: the exposure limit's room, bounded by the daily cap's."""
    business_date = BusinessDay.objects.values_list("current", flat=True).first()
    lines = {
        line.company_id: line
        for line in CreditLine.objects.filter(status__in=LIVE_LINE_STATES)
    }
    overdue = overdue_owed_by_company()
    result = []
    for company in Company.objects.order_by("code"):
        line = lines.get(company.pk)
        if line is None:
            result.append(CompanyExposure(company.pk, company.code, company.legal_name, "", ZERO, ZERO, ZERO,
                                          ZERO, ZERO, None, money(overdue.get(company.pk) or ZERO)))
            continue
        used = line.reserved + line.outstanding
        result.append(CompanyExposure(
            company_id=company.pk,
            code=company.code,
            legal_name=company.legal_name,
            line_status=line.status,
            approved_limit=line.approved_limit,
            effective_limit=line.effective_limit,
            reserved=line.reserved,
            outstanding=line.outstanding,
            available=line.available_on(business_date),
            utilisation=percent(used, line.effective_limit) if line.effective_limit else (
                None if used else ZERO),
            overdue=money(overdue.get(company.pk) or ZERO),
        ))
    return result


def exposure_totals(exposures: list[CompanyExposure]) -> dict[str, Decimal]:
    keys = ("approved_limit", "effective_limit", "reserved", "outstanding", "available", "overdue")
    return {key: sum((getattr(e, key) for e in exposures), ZERO) for key in keys}


def pending_approvals(*, limit: int = 50) -> list[CreditLineChangeRequest]:
    return list(
        CreditLineChangeRequest.objects.filter(status=ChangeRequestStatus.PENDING)
        .select_related("credit_line__company", "maker")
        .order_by("created_at", "id")[:limit]
    )


def audit_trail(*, company: str = "", object_type: str = "", object_id: str = "", actor: str = "",
                limit: int = 500) -> list[AuditEvent]:
    """Audit rows, newest first, filtered by company code, object (type and/or id) and actor label."""
    rows = AuditEvent.objects.select_related("company", "actor")
    if company:
        rows = rows.filter(company__code=company)
    if object_type:
        rows = rows.filter(object_type=object_type)
    if object_id:
        rows = rows.filter(object_id=object_id)
    if actor:
        rows = rows.filter(actor_label=actor)
    return list(rows.order_by("-occurred_at", "-id")[:limit])


def audit_latest(*, limit: int = 20) -> list[AuditEvent]:
    return list(AuditEvent.objects.select_related("company").order_by("-occurred_at", "-id")[:limit])


def webhooks_undelivered(*, limit: int = 20) -> dict[str, Any]:
    undelivered = WebhookEvent.objects.filter(
        status__in=[WebhookEventStatus.PENDING, WebhookEventStatus.FAILED]
    )
    counts = dict(undelivered.values("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "pending": counts.get(WebhookEventStatus.PENDING, 0),
        "failed": counts.get(WebhookEventStatus.FAILED, 0),
        "oldest": undelivered.aggregate(oldest=Min("created_at"))["oldest"],
        "events": list(undelivered.select_related("company").order_by("created_at", "id")[:limit]),
    }


def payouts_by_status() -> list[dict[str, Any]]:
    """Every payout status with its count and amount (zero rows included, in the FSM's order)."""
    found = {
        row["status"]: row
        for row in Payout.objects.values("status").annotate(count=Count("id"), amount=Sum("amount"))
    }
    return [
        {"status": status, "label": label, "count": found.get(status, {}).get("count", 0),
         "amount": money(found.get(status, {}).get("amount") or ZERO)}
        for status, label in PayoutStatus.choices
    ]


def payouts_needing_attention(*, now: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Unknown and manual-review payouts, oldest first, with how long they have been in that state."""
    now = now or timezone.now()
    payouts = (
        Payout.objects.filter(status__in=[PayoutStatus.UNKNOWN, PayoutStatus.MANUAL_REVIEW])
        .select_related("advance__company")
        .order_by("updated_at", "id")[:limit]
    )
    return [{"payout": p, "age": now - p.updated_at} for p in payouts]


def channel_success_rates(*, now: datetime | None = None, days: int | None = None) -> list[dict[str, Any]]:
    """Per channel over the last `days` days: attempts by outcome and succeeded / (succeeded + failed)."""
    now = now or timezone.now()
    since = now - timedelta(days=days or settings.CONSOLE_CHANNEL_WINDOW_DAYS)
    rows = (
        PayoutAttempt.objects.filter(created_at__gte=since)
        .values("channel__code")
        .annotate(
            attempts=Count("id"),
            **SUCCESS_RATE_COUNTS,
            undecided=Count("id", filter=Q(status__in=[AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN])),
        )
        .order_by("channel__code")
    )
    return [
        {"channel": r["channel__code"], "attempts": r["attempts"], "succeeded": r["succeeded"],
         "failed": r["failed"], "undecided": r["undecided"],
         "success_rate": success_rate_percent(succeeded=r["succeeded"], failed=r["failed"])}
        for r in rows
    ]


def job_runs_latest(*, limit: int = 10) -> list[Any]:
    """The latest nightly job runs, newest first."""
    from settlement.models import JobRun

    return list(JobRun.objects.order_by("-started_at", "-id")[:limit])


def reconciliation_exceptions_open(*, limit: int = 20) -> list[Any]:
    """The reconciliation work queue: open exceptions only (resolved and written-off ones are history),
    oldest first."""
    from settlement.selectors import reconciliation_exceptions_open as queue

    return list(queue()[:limit])


def reconciliation_exceptions_open_count() -> int:
    from settlement.selectors import reconciliation_exceptions_open_count as count

    return count()


def recent_business_days(*, until: date, count: int = 30) -> list[date]:
    """The last `count` stored business days up to `until`; calendar days when no calendar is stored."""
    days = business_days_up_to(until, count)
    if not days:
        days = [until - timedelta(days=n) for n in range(count)]
    return sorted(days)


def daily_disbursed_and_repaid(*, until: date, count: int = 30) -> list[dict[str, Any]]:
    """Per business day, all companies: advanced (bank-funded principal out, net of returns) and repaid.

    Both come from the receivable accounts in the ledger (see funding.selectors.entry_category), so repayments appear
    as soon as the nightly repayment job posts them; until then "repaid" is zero.
    """
    days = recent_business_days(until=until, count=count)
    movements = receivable_movements(start=days[0], end=until)
    totals = {day: {"advanced": ZERO, "repaid": ZERO} for day in days}
    for per_day in movements.values():
        for day, categories in per_day.items():
            if day in totals:
                totals[day]["advanced"] += categories["advanced"]
                totals[day]["repaid"] += categories["repaid"]
    return [{"date": day, "disbursed": money(v["advanced"]), "repaid": money(v["repaid"])}
            for day, v in totals.items()]


# --- work queues and staff sign-ins ----------------------------------------------------------------------

def credit_lines_for_queue(*, limit: int = 200) -> list[CreditLine]:
    """Live lines (active, frozen, suspended, pending approval), the objects of freeze/unfreeze/propose."""
    return list(
        CreditLine.objects.filter(status__in=LIVE_LINE_STATES).select_related("company")
        .order_by("company__code", "id")[:limit]
    )


def manual_reviews_open(*, limit: int = 100) -> list[Any]:
    from settlement.models import ManualReview, ManualReviewStatus

    return list(
        ManualReview.objects.exclude(status=ManualReviewStatus.RESOLVED)
        .select_related("payout__advance__company", "attempt__channel", "proposed_by")
        .order_by("opened_at", "id")[:limit]
    )


def webhooks_failed(*, limit: int = 100) -> list[WebhookEvent]:
    return list(
        WebhookEvent.objects.filter(status=WebhookEventStatus.FAILED).select_related("company")
        .order_by("created_at", "id")[:limit]
    )


@dataclass(frozen=True)
class StaffSignIn:
    user_id: int
    username: str
    full_name: str
    groups: list[str]
    is_active: bool
    is_superuser: bool
    last_login: datetime | None
    failures_recent: int
    last_failure: datetime | None


def staff_sign_ins(*, now: datetime | None = None, days: int = 30) -> list[StaffSignIn]:
    """Every staff user with their last successful login and failed attempts in the last `days` days."""
    from django.contrib.auth import get_user_model

    from funding.console.models import LoginFailure

    since = (now or timezone.now()) - timedelta(days=days)
    failures = {
        row["username"]: row
        for row in LoginFailure.objects.filter(occurred_at__gte=since).values("username")
        .annotate(n=Count("id"), last=Max("occurred_at"))
    }
    users = get_user_model().objects.filter(is_staff=True).prefetch_related("groups").order_by("username")
    result = []
    for user in users:
        failed = failures.get(user.get_username(), {})
        result.append(StaffSignIn(
            user_id=user.pk, username=user.get_username(), full_name=user.get_full_name(),
            groups=sorted(g.name for g in user.groups.all()), is_active=user.is_active,
            is_superuser=user.is_superuser, last_login=user.last_login,
            failures_recent=failed.get("n", 0), last_failure=failed.get("last"),
        ))
    return result


def login_failures_latest(*, limit: int = 100) -> list[Any]:
    """The latest failed logins, unknown usernames included (someone guessing names shows up here)."""
    from funding.console.models import LoginFailure

    return list(LoginFailure.objects.order_by("-occurred_at", "-id")[:limit])


@dataclass(frozen=True)
class CalendarYearRow:
    year: int
    published: bool
    source: str
    published_by: str
    published_at: datetime | None
    business_days: int
    holidays: int
    makeup_workdays: int


def calendar_years() -> list[CalendarYearRow]:
    """Each stored year, newest first, with its day counts."""
    counts = {
        row["date__year"]: row
        for row in CalendarDay.objects.values("date__year").annotate(
            business=Count("date", filter=Q(is_business_day=True)),
            holidays=Count("date", filter=Q(kind="holiday")),
            makeup=Count("date", filter=Q(kind="makeup_workday")),
        ).order_by()
    }
    rows = []
    for year in CalendarYear.objects.select_related("published_by").order_by("-year"):
        c = counts.get(year.year, {})
        rows.append(CalendarYearRow(
            year=year.year, published=year.published, source=year.source,
            published_by=year.published_by.get_username() if year.published_by else "",
            published_at=year.published_at, business_days=c.get("business", 0), holidays=c.get("holidays", 0),
            makeup_workdays=c.get("makeup", 0),
        ))
    return rows


def calendar_changes_pending() -> list[CalendarChangeRequest]:
    return list(
        CalendarChangeRequest.objects.filter(status=CalendarChangeStatus.PENDING)
        .select_related("maker")
        .order_by("created_at", "id")
    )


def company_requests_pending() -> list[CompanyChangeRequest]:
    return list(
        CompanyChangeRequest.objects.filter(status=CompanyChangeStatus.PENDING)
        .select_related("company", "maker")
        .order_by("created_at", "id")
    )


def margin_setoffs_pending() -> list[MarginSetOff]:
    """Margin set-offs waiting for a checker, oldest first."""
    return list(
        MarginSetOff.objects.filter(status=MarginSetOffStatus.PENDING)
        .select_related("company", "maker")
        .order_by("created_at", "id")
    )
