"""Repayments and daily statements as the API shows them.

Interim: the repayment models are being built separately. Until they land, `repayment_list` returns nothing
and the statement is computed from the advances alone (no repayment lines, repaid/penalties from the
advances' current counters). The shapes are final; only the sources will change.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Q

from funding.models import Advance, AdvanceStatus, Company
from funding.representations import amount_str

ZERO = Decimal("0.00")
DRAWN_STATES = [
    AdvanceStatus.DISBURSED,
    AdvanceStatus.PARTIALLY_DISBURSED,
    AdvanceStatus.OVERDUE,
    AdvanceStatus.REPAID,
]


def repayment_list(*, company: Company, business_date: date | None = None) -> list[dict[str, Any]]:
    return []


def statement_build(*, company: Company, business_date: date) -> dict[str, Any]:
    before = Advance.objects.filter(company=company, business_date__lt=business_date, status__in=DRAWN_STATES)
    opening = sum((a.principal_outstanding for a in before), ZERO)
    todays = list(
        Advance.objects.filter(company=company, business_date=business_date)
        .filter(~Q(status=AdvanceStatus.CANCELLED))
        .order_by("created_at", "id")
    )
    advanced = sum((a.advanced_disbursed for a in todays), ZERO)
    fees = sum((a.fee for a in todays), ZERO)
    overdue = sum(
        (
            a.principal_outstanding
            for a in Advance.objects.filter(
                company=company, status=AdvanceStatus.OVERDUE, business_date__lte=business_date
            )
        ),
        ZERO,
    )
    lines = [
        {
            "type": "advance",
            "id": a.public_id,
            "external_id": a.external_id,
            "status": a.status,
            "advanced": amount_str(a.advanced_disbursed),
            "fee": amount_str(a.fee),
            "penalty": amount_str(a.penalty_accrued),
            "repaid": amount_str(a.repaid_amount),
            "outstanding": amount_str(a.outstanding_amount),
        }
        for a in todays
    ]
    repaid = ZERO
    penalties = ZERO
    return {
        "company": company.code,
        "business_date": business_date.isoformat(),
        "currency": "CNY",
        "opening_outstanding": amount_str(opening),
        "advanced": amount_str(advanced),
        "fees": amount_str(fees),
        "repaid": amount_str(repaid),
        "penalties": amount_str(penalties),
        "closing_outstanding": amount_str(opening + advanced - repaid),
        "overdue": amount_str(overdue),
        "lines": lines,
    }


STATEMENT_CSV_COLUMNS = [
    "type",
    "id",
    "external_id",
    "status",
    "advanced",
    "fee",
    "penalty",
    "repaid",
    "outstanding",
]
STATEMENT_CSV_SUMMARY = [
    "opening_outstanding",
    "advanced",
    "fees",
    "repaid",
    "penalties",
    "closing_outstanding",
    "overdue",
]


def statement_csv(statement: dict[str, Any]) -> str:
    """Same content as the JSON: one row per line, then one `summary` row per total (name in `id`, value in
    `amount`)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["company", "business_date", "currency", *STATEMENT_CSV_COLUMNS, "amount"])
    head = [statement["company"], statement["business_date"], statement["currency"]]
    for line in statement["lines"]:
        writer.writerow([*head, *[line[c] if line[c] is not None else "" for c in STATEMENT_CSV_COLUMNS], ""])
    for name in STATEMENT_CSV_SUMMARY:
        writer.writerow([*head, "summary", name, "", "", "", "", "", "", "", statement[name]])
    return out.getvalue()
