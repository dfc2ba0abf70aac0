"""Reads of the funding app shared by the API, webhook events and the console."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum

from funding.errors import CalendarUnavailable
from funding.models import (
    Advance,
    AdvanceStatus,
    BusinessDay,
    CalendarChangeKind,
    CalendarChangeRequest,
    CalendarChangeStatus,
    CalendarYear,
    Company,
    CompanyStatus,
    CreditLine,
    CreditLineStatus,
    Payout,
    PayoutStatus,
)
from funding.representations import amount_str
from ledger.models import Account, AccountKind

SHOWN_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]


def settlement_available(company: Company) -> Decimal:
    account = Account.objects.filter(kind=AccountKind.SETTLEMENT, owner=company.code).first()
    if account is None:
        return Decimal("0.00")
    return max(account.available, Decimal("0.00"))


def credit_lines_unknown_out(*, line_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Per credit line: the bank parts of payouts handed to a channel whose outcome is not yet known (out and not
    succeeded). They are in the advance receivable (exposure from hand-off) but still in the line's `reserved`
    (contract 1.7), so a line's `outstanding` = its company's advance-receivable balance less this amount.
    Lines with nothing out are left out of the result."""
    payouts = Payout.objects.filter(funds_out=True).exclude(status=PayoutStatus.SUCCEEDED)
    if line_ids is not None:
        payouts = payouts.filter(advance__credit_line_id__in=line_ids)
    rows = payouts.values("advance__credit_line_id").annotate(total=Sum("advanced_amount")).order_by()
    return {row["advance__credit_line_id"]: row["total"] for row in rows if row["total"]}


def credit_line_view(*, company: Company) -> dict[str, Any]:
    """The contract's GET /credit-line body. `status` is `none` when no line was ever approved."""
    from funding.services.calendar import next_business_day

    line = (
        CreditLine.objects.filter(company=company, status__in=SHOWN_LINE_STATES).first()
        or CreditLine.objects.filter(company=company, status=CreditLineStatus.EXPIRED)
        .order_by("-updated_at")
        .first()
    )
    day = BusinessDay.objects.first()
    business_date = day.current if day else None
    next_date = None
    if business_date:
        try:
            next_date = next_business_day(business_date)
        except CalendarUnavailable:
            next_date = None
    overdue = Advance.objects.filter(company=company, status=AdvanceStatus.OVERDUE).aggregate(
        total=Sum(F("advanced_disbursed") - F("principal_repaid"))
    )["total"] or Decimal("0.00")
    zero = Decimal("0.00")
    status = line.status if line else "none"
    if company.status == CompanyStatus.SUSPENDED and status != "none":
        status = "suspended"  # the company is suspended by the bank: its line serves nothing (company_suspended)
    body = {
        "company": company.code,
        "currency": line.currency if line else "CNY",
        "status": status,
        "approved_limit": amount_str(line.approved_limit if line else zero),
        "effective_limit": amount_str(line.effective_limit if line else zero),
        "limit_factors": [],
        "reserved": amount_str(line.reserved if line else zero),
        "outstanding": amount_str(line.outstanding if line else zero),
        "overdue": amount_str(overdue),
        "available": amount_str(line.available_on(business_date) if line else zero),
        "own_funds_available": amount_str(settlement_available(company)),
        "business_date": business_date.isoformat() if business_date else None,
        "next_business_date": next_date.isoformat() if next_date else None,
        "daily_fee_rate": str(line.daily_fee_rate) if line else None,
        "daily_cap": amount_str(line.daily_cap) if line and line.daily_cap is not None else None,
        "advanced_today": amount_str(line.advanced_on_date(business_date) if line else zero),
        "limit_thresholds": [f"{t:.2f}" for t in line.limit_thresholds] if line else [],
    }
    factors = line.limit_factors if line and line.limit_factors else None
    if factors:
        body["limit_factors"] = [limit_factor_view(f) for f in factors if isinstance(f, dict) and f.get("value")]
    elif line:
        body["limit_factors"] = [{"factor": "approved_limit", "value": amount_str(line.approved_limit)}]
    return body


# The inputs a factor may carry, in the order the API shows them (contract 1.7).
LIMIT_FACTOR_INPUTS = ("multiple", "base", "as_of", "window_business_days", "window_from", "window_to")


def limit_factor_view(factor: dict) -> dict[str, Any]:
    """{"factor": "flow", "value": "900000.00", "multiple": "1.50", "base": "600000.00", "as_of": ...}"""
    view = {"factor": str(factor.get("factor")), "value": amount_str(Decimal(str(factor.get("value"))))}
    view.update({key: factor[key] for key in LIMIT_FACTOR_INPUTS if key in factor})
    return view




# Staff are warned (console banner, metric engine_calendar_publication_due) from this many days before the
# last published day: the State Council publishes the next year's holidays late in the year.
CALENDAR_WARNING_DAYS = 30


@dataclass(frozen=True)
class CalendarOutlook:
    business_date: date | None
    # The last day of the published years following one another from the business date's year on.
    last_published_day: date | None
    first_unpublished_year: int | None
    days_left: int | None  # from the business date to last_published_day

    @property
    def warning(self) -> bool:
        return self.business_date is not None and (self.days_left is None or self.days_left <= CALENDAR_WARNING_DAYS)


def calendar_outlook() -> CalendarOutlook:
    day = BusinessDay.objects.first()
    if day is None:
        return CalendarOutlook(None, None, None, None)
    current = day.current.year
    published = set(
        CalendarYear.objects.filter(published=True, year__gte=current).values_list("year", flat=True)
    )
    year = current
    while year in published:
        year += 1
    if year == current:
        return CalendarOutlook(day.current, None, year, None)
    last = date(year - 1, 12, 31)
    return CalendarOutlook(day.current, last, year, (last - day.current).days)


def calendar_pending_year(*, year: int) -> CalendarChangeRequest | None:
    return (
        CalendarChangeRequest.objects.select_related("maker")
        .filter(kind=CalendarChangeKind.PUBLISH_YEAR, year=year, status=CalendarChangeStatus.PENDING)
        .first()
    )
