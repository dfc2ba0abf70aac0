"""Repayments and daily statements as the API shows them.

Totals of the statement come from the ledger (the company's advance, fee and penalty receivables), so the
statement always agrees with the books: closing = opening + advanced + fees + penalties - repaid.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Prefetch, Q

from funding.exports import csv_text
from funding.models import Advance, AdvanceStatus, Company
from funding.representations import amount_str, timestamp_str
from ledger.models import AccountKind
from settlement.models import PayoutReturn, Repayment, RepaymentAllocation, RepaymentSource

ZERO = Decimal("0.00")
# Returns (退汇): their journals credit the receivables for principal still owed and fee given back.
RETURN_JOURNAL_KIND = "payout.bank_return"
RECEIVABLE_KINDS = [AccountKind.ADVANCE_RECEIVABLE, AccountKind.FEE_RECEIVABLE, AccountKind.PENALTY_RECEIVABLE]


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
    """Movements on the company's receivables: before the day (opening) and on the day, by nature."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT
              coalesce(sum(CASE WHEN j.business_date < %(d)s
                                THEN CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END END), 0),
              coalesce(sum(CASE WHEN j.business_date = %(d)s AND a.kind = %(principal)s
                                 AND j.kind IN ('payout.funds_out', 'payout.returned')
                                THEN CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END END), 0),
              coalesce(sum(CASE WHEN j.business_date = %(d)s AND a.kind = %(fee)s AND e.direction = 'D'
                                THEN e.amount
                                WHEN j.business_date = %(d)s AND a.kind = %(fee)s AND j.kind = %(bank_return)s
                                THEN -e.amount END), 0),
              coalesce(sum(CASE WHEN j.business_date = %(d)s AND a.kind = %(penalty)s AND e.direction = 'D'
                                THEN e.amount END), 0),
              coalesce(sum(CASE WHEN j.business_date = %(d)s AND j.kind = 'repayment' AND e.direction = 'C'
                                THEN e.amount END), 0),
              coalesce(sum(CASE WHEN j.business_date = %(d)s AND a.kind = %(principal)s
                                 AND j.kind = %(bank_return)s AND e.direction = 'C' THEN e.amount END), 0),
              coalesce(sum(CASE WHEN j.business_date <= %(d)s
                                THEN CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END END), 0)
              FROM ledger_entry e
              JOIN ledger_account a ON a.id = e.account_id
              JOIN ledger_journaltransaction j ON j.id = e.transaction_id
             WHERE a.owner = %(owner)s AND a.kind = ANY(%(kinds)s)
            """,
            {
                "d": business_date,
                "owner": company.code,
                "kinds": [str(k) for k in RECEIVABLE_KINDS],
                "principal": str(AccountKind.ADVANCE_RECEIVABLE),
                "fee": str(AccountKind.FEE_RECEIVABLE),
                "penalty": str(AccountKind.PENALTY_RECEIVABLE),
                "bank_return": RETURN_JOURNAL_KIND,
            },
        )
        opening, advanced, fees, penalties, repaid, returned, closing = cursor.fetchone()
    return {
        "opening_outstanding": opening,
        "advanced": advanced,
        "fees": fees,
        "penalties": penalties,
        "repaid": repaid,
        "returned": returned,
        "closing_outstanding": closing,
    }


def statement_build(*, company: Company, business_date: date) -> dict[str, Any]:
    totals = _ledger_totals(company, business_date)
    todays = list(
        Advance.objects.filter(company=company, business_date=business_date)
        .filter(~Q(status=AdvanceStatus.CANCELLED))
        .order_by("created_at", "id")
    )
    overdue = sum(
        (
            a.outstanding_amount
            for a in Advance.objects.filter(
                company=company, status=AdvanceStatus.OVERDUE, due_date__lte=business_date
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
