"""Repayments and daily statements as the API shows them.

Totals of the statement come from the ledger (the company's advance, fee and penalty receivables), so the
statement always agrees with the books: closing = opening + advanced + fees + penalties - repaid.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, Q

from funding.exports import csv_text
from funding.models import Advance, AdvanceStatus, Company
from funding.representations import amount_str, timestamp_str
from funding.selectors import CATEGORIES, overdue_owed_by_company, receivable_movements, receivable_net
from settlement.models import PayoutReturn, Repayment, RepaymentAllocation, RepaymentSource

ZERO = Decimal("0.00")


def _repayments(company: Company, business_date: date | None, *, refunds: bool = True):
    allocations = RepaymentAllocation.objects.select_related("advance").order_by("id")
    repayments = Repayment.objects.filter(company=company).prefetch_related(
        Prefetch("allocations", queryset=allocations)
    )
    if business_date is not None:
        repayments = repayments.filter(business_date=business_date)
    if not refunds:
        repayments = repayments.exclude(source=RepaymentSource.REFUND)
    return repayments.order_by("-business_date", "-id")


def repayment_list(*, company: Company, business_date: date | None = None) -> list[dict[str, Any]]:
    return [
        {
            "id": repayment.reference,
            "business_date": repayment.business_date.isoformat(),
            "source": repayment.source,
            "amount": amount_str(repayment.amount),
            "allocations": [
                {
                    "advance_id": allocation.advance.public_id,
                    "penalty": amount_str(allocation.penalty),
                    "fee": amount_str(allocation.fee),
                    "principal": amount_str(allocation.principal),
                }
                for allocation in repayment.allocations.all()
            ],
            "created_at": timestamp_str(repayment.created_at),
        }
        for repayment in _repayments(company, business_date)
    ]


def _ledger_totals(company: Company, business_date: date) -> dict[str, Decimal]:
    """Movements on the company's receivables: before the day (opening) and on the day, by nature
    (funding.selectors.entry_category, as the console's daily position)."""
    history = receivable_movements(end=business_date, owners=[company.code]).get(company.code, {})
    opening = sum((receivable_net(day) for d, day in history.items() if d < business_date), ZERO)
    today = history.get(business_date, dict.fromkeys(CATEGORIES, ZERO))
    return {
        "opening_outstanding": opening,
        "advanced": today["advanced"],
        "fees": today["fees"],
        "penalties": today["penalties"],
        "repaid": today["repaid"],
        "returned": today["returned"],
        "closing_outstanding": opening + receivable_net(today),
    }


def statement_build(*, company: Company, business_date: date) -> dict[str, Any]:
    totals = _ledger_totals(company, business_date)
    todays = list(
        Advance.objects.filter(company=company, business_date=business_date)
        .filter(~Q(status=AdvanceStatus.CANCELLED))
        .order_by("created_at", "id")
    )
    overdue = overdue_owed_by_company(company_ids=[company.pk], due_by=business_date).get(company.pk, ZERO)
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
            "returned": amount_str(a.returned_amount),
            "refunded": amount_str(ZERO),
        }
        for a in todays
    ]
    lines += [
        {
            "type": "repayment",
            "id": r.reference,
            "external_id": None,
            "status": None,
            "advanced": amount_str(ZERO),
            "fee": amount_str(r.fee),
            "penalty": amount_str(r.penalty),
            "repaid": amount_str(r.amount),
            "outstanding": amount_str(ZERO),
            "returned": amount_str(ZERO),
            "refunded": amount_str(ZERO),
        }
        for r in reversed(list(_repayments(company, business_date, refunds=False)))
    ]
    # One line per payout returned on the day (退汇): its amount, the fee given back, the repaid part refunded.
    returns = (
        PayoutReturn.objects.filter(payout__advance__company=company, business_date=business_date)
        .select_related("payout")
        .order_by("created_at", "id")
    )
    lines += [
        {
            "type": "return",
            "id": r.payout.public_id,
            "external_id": r.payout.external_id,
            "status": r.payout.status,
            "advanced": amount_str(ZERO),
            "fee": amount_str(r.fee_after - r.fee_before),
            "penalty": amount_str(ZERO),
            "repaid": amount_str(ZERO),
            "outstanding": amount_str(ZERO),
            "returned": amount_str(r.amount),
            "refunded": amount_str(r.refund),
        }
        for r in returns
    ]
    totals["refunded"] = sum((r.refund for r in returns), ZERO)
    return {
        "company": company.code,
        "business_date": business_date.isoformat(),
        "currency": "CNY",
        **{name: amount_str(value) for name, value in totals.items()},
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
# Added with returns (contract 1.7); after `amount`, so the earlier columns keep their places.
STATEMENT_CSV_RETURN_COLUMNS = ["returned", "refunded"]
STATEMENT_CSV_SUMMARY = [
    "opening_outstanding",
    "advanced",
    "fees",
    "repaid",
    "penalties",
    "closing_outstanding",
    "overdue",
    "returned",
    "refunded",
]


def statement_csv(statement: dict[str, Any]) -> str:
    """Same content as the JSON: one row per line, then one `summary` row per total (name in `id`, value in
    `amount`). Cells go through funding.exports: text a company sent (external ids) cannot become a formula."""
    head = [statement["company"], statement["business_date"], statement["currency"]]
    rows = [
        [*head, *[line[c] for c in STATEMENT_CSV_COLUMNS], None, *[line[c] for c in STATEMENT_CSV_RETURN_COLUMNS]]
        for line in statement["lines"]
    ]
    rows += [
        [*head, "summary", name, *([None] * (len(STATEMENT_CSV_COLUMNS) - 2)), statement[name],
         *([None] * len(STATEMENT_CSV_RETURN_COLUMNS))]
        for name in STATEMENT_CSV_SUMMARY
    ]
    return csv_text(
        ["company", "business_date", "currency", *STATEMENT_CSV_COLUMNS, "amount", *STATEMENT_CSV_RETURN_COLUMNS], rows
    )
