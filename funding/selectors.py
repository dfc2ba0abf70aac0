"""Reads of the funding app shared by the API, webhook events and the console."""

from decimal import Decimal
from typing import Any

from django.db.models import F, Sum

from funding.errors import CalendarUnavailable
from funding.models import Advance, AdvanceStatus, BusinessDay, Company, CreditLine, CreditLineStatus
from funding.representations import amount_str
from ledger.models import Account, AccountKind

SHOWN_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]


def settlement_available(company: Company) -> Decimal:
    account = Account.objects.filter(kind=AccountKind.SETTLEMENT, owner=company.code).first()
    if account is None:
        return Decimal("0.00")
    return max(account.available, Decimal("0.00"))


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
    body = {
        "company": company.code,
        "currency": line.currency if line else "CNY",
        "status": line.status if line else "none",
        "approved_limit": amount_str(line.approved_limit if line else zero),
        "effective_limit": amount_str(line.effective_limit if line else zero),
        "limit_factors": [],
        "reserved": amount_str(line.reserved if line else zero),
        "outstanding": amount_str(line.outstanding if line else zero),
        "overdue": amount_str(overdue),
        "available": amount_str(line.available if line else zero),
        "own_funds_available": amount_str(settlement_available(company)),
        "business_date": business_date.isoformat() if business_date else None,
        "next_business_date": next_date.isoformat() if next_date else None,
        "daily_fee_rate": str(line.daily_fee_rate) if line else None,
    }
    factors = line.limit_factors if line and line.limit_factors else None
    if factors:
        body["limit_factors"] = [
            {"factor": str(f.get("factor")), "value": amount_str(Decimal(str(f.get("value"))))}
            for f in factors
            if isinstance(f, dict) and f.get("value") is not None
        ]
    elif line:
        body["limit_factors"] = [{"factor": "approved_limit", "value": amount_str(line.approved_limit)}]
    return body


