"""Reads of the funding app shared by the API, webhook events and the console."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import DecimalField, ExpressionWrapper, F, Sum

from funding.errors import CalendarUnavailable
from funding.models import (
    Advance,
    AdvanceStatus,
    AgingBucket,
    BusinessDay,
    CalendarChangeKind,
    CalendarChangeRequest,
    CalendarChangeStatus,
    CalendarDay,
    CalendarYear,
    Company,
    CompanyStatus,
    CreditLine,
    CreditLineStatus,
    Payout,
    PayoutStatus,
)
from funding.representations import amount_str
from ledger.models import AccountKind, Entry, EntryDirection
from ledger.money import ZERO, money

SHOWN_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]


# --- what an advance owes: one definition, rendered for Python, the ORM and SQL -------------------------------
# Outstanding = for each part, what was charged less what was repaid. The Advance properties
# (outstanding_amount, principal_outstanding, repaid_amount), the ORM expressions and the SQL text of the
# set-based jobs all come from this table (tests/funding/test_selectors.py compares the three).
OUTSTANDING_PARTS = {
    "principal": ("advanced_disbursed", "principal_repaid"),
    "fee": ("fee", "fee_repaid"),
    "penalty": ("penalty_accrued", "penalty_repaid"),
}
ALL_PARTS = ("principal", "fee", "penalty")
# Penalty interest accrues on overdue principal and fee (never on penalty).
PENALTY_BASE_PARTS = ("principal", "fee")
_MONEY_OUTPUT = DecimalField(max_digits=settings.MONEY_MAX_DIGITS + 2, decimal_places=settings.MONEY_DECIMAL_PLACES)


def advance_outstanding(advance, *, parts: tuple[str, ...] = ALL_PARTS) -> Decimal:
    """What `advance` still owes of `parts` (all: principal, fee and penalty)."""
    result = Decimal(0)
    for part in parts:
        charged, repaid = OUTSTANDING_PARTS[part]
        result = result + getattr(advance, charged) - getattr(advance, repaid)
    return result


def advance_repaid(advance) -> Decimal:
    """What was repaid on `advance`, all parts."""
    return sum((getattr(advance, OUTSTANDING_PARTS[part][1]) for part in ALL_PARTS), Decimal(0))


def outstanding_expression(*, parts: tuple[str, ...] = ALL_PARTS) -> ExpressionWrapper:
    """advance_outstanding as an ORM expression over Advance rows (for annotate/aggregate)."""
    expression = None
    for part in parts:
        charged, repaid = OUTSTANDING_PARTS[part]
        term = F(charged) - F(repaid)
        expression = term if expression is None else expression + term
    return ExpressionWrapper(expression, output_field=_MONEY_OUTPUT)


def outstanding_sql(alias: str, *, parts: tuple[str, ...] = ALL_PARTS) -> str:
    """advance_outstanding as SQL over the funding_advance row `alias`, parenthesised."""
    terms = " + ".join(f"{alias}.{OUTSTANDING_PARTS[p][0]} - {alias}.{OUTSTANDING_PARTS[p][1]}" for p in parts)
    return f"({terms})"


def repaid_sql(alias: str) -> str:
    """advance_repaid as SQL over the funding_advance row `alias`, parenthesised."""
    return "(" + " + ".join(f"{alias}.{OUTSTANDING_PARTS[p][1]}" for p in ALL_PARTS) + ")"


# Aging of overdue amounts by days past due (1 = unpaid at the close of the due date): (bucket, first day,
# last day or None). The nightly aging (SQL), the advance's aging_bucket and the console's daily position
# all bucket with this table.
AGING_BUCKETS = (
    (AgingBucket.D1_3, 1, 3),
    (AgingBucket.D4_7, 4, 7),
    (AgingBucket.D8_30, 8, 30),
    (AgingBucket.OVER_30, 31, None),
)


def aging_bucket(days_past_due: int) -> AgingBucket:
    """The bucket of an amount `days_past_due` days late (below 1: the first)."""
    for bucket, _first, last in AGING_BUCKETS:
        if last is None or days_past_due <= last:
            return bucket
    raise AssertionError("the last aging bucket is open-ended")


def aging_bucket_sql(days_past_due: str) -> str:
    """aging_bucket as a SQL CASE over the integer expression `days_past_due`."""
    whens = " ".join(f"WHEN {days_past_due} <= {last} THEN '{bucket.value}'"
                     for bucket, _first, last in AGING_BUCKETS if last is not None)
    return f"CASE {whens} ELSE '{AGING_BUCKETS[-1][0].value}' END"


# Overdue has two meanings, named apart:
# - overdue principal: the principal outstanding of overdue advances, the part of the credit line's
#   `outstanding` (advance receivable) that is overdue: GET /credit-line `overdue`;
# - overdue owed: all that overdue advances still owe (principal, fee, penalty): the statement's and the
#   console's `overdue`, and the nightly aging snapshot.
def overdue_principal(*, company: Company) -> Decimal:
    """Principal outstanding of the company's overdue advances (part of its line's outstanding)."""
    total = Advance.objects.filter(company=company, status=AdvanceStatus.OVERDUE).aggregate(
        total=Sum(outstanding_expression(parts=("principal",)))
    )["total"]
    return total or Decimal("0.00")


def overdue_owed_by_company(*, company_ids: list[int] | None = None, due_by: date | None = None
                            ) -> dict[int, Decimal]:
    """{company id: all that its overdue advances still owe}; `due_by`: only advances due on or before it."""
    advances = Advance.objects.filter(status=AdvanceStatus.OVERDUE)
    if company_ids is not None:
        advances = advances.filter(company_id__in=company_ids)
    if due_by is not None:
        advances = advances.filter(due_date__lte=due_by)
    return dict(
        advances.values("company_id").annotate(total=Sum(outstanding_expression()))
        .order_by().values_list("company_id", "total")
    )


def own_funds_available(*, company: Company, business_date: date | None) -> Decimal:
    """What an advance's own-funds part may take now (contract 1.7): the settlement account's balance, less
    what is due for repayment on or before `business_date` and not yet collected (principal, fee and penalty),
    less own funds held by advances not yet final; never below 0.00.

    The one definition is PostgreSQL's own_funds_available() (funding/sql/advance_reserve.py), which
    advance_reserve() holds own funds from; this reads it, so that what the API shows is what a request gets.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT own_funds_available(%s::bigint, %s::text, %s::date)",
            [company.pk, settings.ENGINE_CURRENCY, business_date],
        )
        return money(cursor.fetchone()[0])


# Payouts out of the bank whose outcome is known: succeeded (outstanding) or returned (released again).
KNOWN_OUT_STATES = [PayoutStatus.SUCCEEDED, PayoutStatus.RETURNED]


def credit_lines_unknown_out(*, line_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Per credit line: the bank parts of payouts handed to a channel whose outcome is not yet known (out and not
    succeeded). They are in the advance receivable (exposure from hand-off) but still in the line's `reserved`
    (contract 1.7), so a line's `outstanding` = its company's advance-receivable balance less this amount.
    Lines with nothing out are left out of the result."""
    payouts = Payout.objects.filter(funds_out=True).exclude(status__in=KNOWN_OUT_STATES)
    if line_ids is not None:
        payouts = payouts.filter(advance__credit_line_id__in=line_ids)
    rows = payouts.values("advance__credit_line_id").annotate(total=Sum("advanced_amount")).order_by()
    return {row["advance__credit_line_id"]: row["total"] for row in rows if row["total"]}


def credit_line_view(*, company: Company) -> dict[str, Any]:
    """The contract's GET /credit-line body. `status` is `none` when no line was ever approved."""
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
    overdue = overdue_principal(company=company)
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
        "own_funds_available": amount_str(own_funds_available(company=company, business_date=business_date)),
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




# --- movements on a company's receivables (advance, fee, penalty): one classification ------------------------
# Every entry falls in exactly one category, so closing = opening + advanced + fees + penalties - repaid equals
# the ledger balance: a debit is "advanced" (advance receivable), "fees" or "penalties" by account; a credit of
# a returned payout reduces "advanced"; every other credit is "repaid"; a reversal ("<kind>.reversal") counts
# against the category of the entry it mirrors. The API's daily statement and the console's reports use it.
RECEIVABLE_KINDS = (
    AccountKind.ADVANCE_RECEIVABLE,
    AccountKind.FEE_RECEIVABLE,
    AccountKind.PENALTY_RECEIVABLE,
)
DEBIT_CATEGORY = {
    AccountKind.ADVANCE_RECEIVABLE: "advanced",
    AccountKind.FEE_RECEIVABLE: "fees",
    AccountKind.PENALTY_RECEIVABLE: "penalties",
}
# Journal kinds whose credit on the advance receivable gives funds back rather than repaying them.
RETURN_KINDS = {"payout.returned"}
# A return (退汇) of a paid payout: its credit on the advance receivable is "returned", its credit on the fee
# receivable (fee given back) lowers "fees" (settlement/services/returns.py writes it).
BANK_RETURN_KIND = "payout.bank_return"
REVERSAL_SUFFIX = ".reversal"
CATEGORIES = ("advanced", "fees", "penalties", "repaid", "returned")

def entry_category(*, account_kind: str, direction: str, journal_kind: str) -> tuple[str, int]:
    """(category, sign) of one receivable entry: its amount times sign adds to that category."""
    reversal = journal_kind.endswith(REVERSAL_SUFFIX)
    base_kind = journal_kind[: -len(REVERSAL_SUFFIX)] if reversal else journal_kind
    flipped = EntryDirection.CREDIT if direction == EntryDirection.DEBIT else EntryDirection.DEBIT
    original = flipped if reversal else direction
    if original == EntryDirection.DEBIT:
        category = DEBIT_CATEGORY[account_kind]
    elif account_kind == AccountKind.ADVANCE_RECEIVABLE and base_kind in RETURN_KINDS:
        category = "advanced"
    elif account_kind == AccountKind.ADVANCE_RECEIVABLE and base_kind == BANK_RETURN_KIND:
        category = "returned"
    elif account_kind == AccountKind.FEE_RECEIVABLE and base_kind == BANK_RETURN_KIND:
        category = "fees"
    else:
        category = "repaid"
    increases = EntryDirection.CREDIT if category in ("repaid", "returned") else EntryDirection.DEBIT
    return category, 1 if direction == increases else -1


def receivable_movements(*, end: date, start: date | None = None, owners: list[str] | None = None
                         ) -> dict[str, dict[date, dict[str, Decimal]]]:
    """{owner: {business_date: {category: amount}}} for receivable entries dated start..end (one query)."""
    entries = Entry.objects.filter(account__kind__in=RECEIVABLE_KINDS, transaction__business_date__lte=end)
    if start is not None:
        entries = entries.filter(transaction__business_date__gte=start)
    if owners is not None:
        entries = entries.filter(account__owner__in=owners)
    grouped = entries.values(
        "account__owner", "account__kind", "direction", "transaction__kind", "transaction__business_date"
    ).annotate(total=Sum("amount"))
    result: dict[str, dict[date, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(CATEGORIES, ZERO))
    )
    for row in grouped:
        category, sign = entry_category(
            account_kind=row["account__kind"],
            direction=row["direction"],
            journal_kind=row["transaction__kind"],
        )
        day = result[row["account__owner"]][row["transaction__business_date"]]
        day[category] += sign * row["total"]
    return result


def receivable_net(day: dict[str, Decimal]) -> Decimal:
    """What a day's categories add to the receivables' balance."""
    return day["advanced"] + day["fees"] + day["penalties"] - day["repaid"] - day["returned"]


# --- the business calendar: one definition of "business day" and "next business day" --------------------------
# Every use (due dates in advance_reserve(), end of day, disbursement's routing, the console's reports, limits'
# flow window, the commands) reads the stored calendar through these; nothing guesses past published years.

def calendar_is_business_day(day: date) -> bool | None:
    """Whether `day` is a business day by the stored calendar; None when its year is not published (or the
    day is not stored): unknown."""
    entry = CalendarDay.objects.filter(date=day).first()
    if entry is None or not CalendarYear.objects.filter(year=day.year, published=True).exists():
        return None
    return entry.is_business_day


def is_business_day(day: date) -> bool:
    """calendar_is_business_day, refusing (calendar_unavailable) when unknown."""
    known = calendar_is_business_day(day)
    if known is None:
        raise CalendarUnavailable(f"The business calendar for {day.year} is not published.")
    return known


def next_business_day(day: date) -> date:
    """The first business day after `day`, from the stored calendar. Refuses to guess past published years."""
    # The rule lives in SQL (calendar_next_business_day, funding/sql/advance_reserve.py): advance_reserve()
    # uses it too, so an advance's due date and every other next business day agree by construction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT next_day, first_missing FROM calendar_next_business_day(%s)", [day])
        next_day, first_missing = cursor.fetchone()
    if next_day is None:
        raise calendar_unavailable(day=day, first_missing=first_missing)
    return next_day


def next_business_days(days: list[date]) -> dict[date, date | None]:
    """next_business_day of each of `days` in one query; None where it cannot be known (no refusal)."""
    if not days:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d, (calendar_next_business_day(d)).next_day FROM unnest(%s::date[]) d", [sorted(set(days))]
        )
        return dict(cursor.fetchall())


def calendar_unavailable(*, day: date, first_missing: date | None) -> CalendarUnavailable:
    """The refusal when no next business day after `day` can be known (first_missing: not published)."""
    if first_missing is None:
        return CalendarUnavailable(f"No business day within 40 days after {day.isoformat()}.")
    return CalendarUnavailable(
        f"The business calendar for {first_missing.year} is not published: the next business day "
        f"after {day.isoformat()} cannot be determined."
    )


def business_days_up_to(day: date, count: int) -> list[date]:
    """The last `count` stored business days on or before `day`, newest first."""
    return list(
        CalendarDay.objects.filter(is_business_day=True, date__lte=day)
        .order_by("-date")
        .values_list("date", flat=True)[:count]
    )


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
