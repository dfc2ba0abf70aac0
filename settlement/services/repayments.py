"""Repayment collection: debit each company's settlement account for what is due, set-based per chunk.

Within a chunk of companies, one SQL statement computes every allocation with window functions: advances
oldest due first, and within an advance penalty, then fee, then principal, until the company's available
settlement balance (credits - debits - pending holds) runs out. Then, in the same transaction: one journal
transaction per company (Dr settlement; Cr penalty, fee and advance receivables), the allocations applied to
the advances by funding (a set-based transition naming the FSM's source states, with one `advance.repaid`
outbox event per advance repaid in full), one INSERT of the allocation rows, and the credit lines'
outstanding lowered.

An advance still `disbursing` (a payout's outcome unknown) owes what its succeeded payouts paid and is collected
like any other (contract 1.7); paid in full it is not `repaid` while a payout may still add to what it owes
(`settles` false, `clears` true: an overdue one goes back to `disbursing`).
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from funding.models import ADVANCE_COLLECTABLE_STATES, AdvanceStatus, Company, advance_disbursement_open_sql
from funding.services.advances import advances_apply_repayments
from funding.services.audit import audit_record
from funding.services.line_counters import line_reduce_outstanding
from ledger.models import Account, AccountKind
from ledger.services import credit, debit, ledger_post
from settlement.models import JobRun, Repayment

ZERO = Decimal("0.00")


@dataclass
class RepaymentTotals:
    companies: int = 0
    advances: int = 0
    advances_repaid: int = 0
    amount: Decimal = ZERO
    penalty: Decimal = ZERO
    fee: Decimal = ZERO
    principal: Decimal = ZERO
    repayments: list[int] = field(default_factory=list)

    def add(self, other: "RepaymentTotals") -> None:
        self.companies += other.companies
        self.advances += other.advances
        self.advances_repaid += other.advances_repaid
        self.amount += other.amount
        self.penalty += other.penalty
        self.fee += other.fee
        self.principal += other.principal


_ALLOCATE_SQL = """
CREATE TEMP TABLE nightly_alloc ON COMMIT DROP AS
WITH avail AS (
    SELECT c.id AS company_id, greatest(a.credits_posted - a.debits_posted - a.debits_pending, 0) AS avail
      FROM funding_company c
      JOIN ledger_account a ON a.owner = c.code AND a.kind = 'settlement' AND a.currency = %(currency)s
     WHERE c.id = ANY(%(company_ids)s)
),
due AS (
    SELECT v.id, v.company_id, v.credit_line_id, v.due_date,
           v.penalty_accrued - v.penalty_repaid AS pen_due,
           v.fee - v.fee_repaid AS fee_due,
           v.advanced_disbursed - v.principal_repaid AS prin_due,
           v.status <> %(disbursing)s AND NOT {open_sql} AS closed
      FROM funding_advance v
     WHERE v.company_id = ANY(%(company_ids)s) AND v.status = ANY(%(states)s)
       AND v.due_date <= %(business_date)s AND v.currency = %(currency)s
),
parts AS (
    SELECT d.id, d.company_id, p.ord, p.amt,
           sum(p.amt) OVER (PARTITION BY d.company_id ORDER BY d.due_date, d.id, p.ord
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
      FROM due d
     CROSS JOIN LATERAL (VALUES (1, d.pen_due), (2, d.fee_due), (3, d.prin_due)) AS p(ord, amt)
     WHERE p.amt > 0
),
taken AS (
    SELECT p.id, p.ord, least(p.amt, greatest(av.avail - (p.upto - p.amt), 0)) AS take
      FROM parts p JOIN avail av USING (company_id)
)
SELECT d.id AS advance_id, d.company_id, d.credit_line_id,
       coalesce(sum(t.take) FILTER (WHERE t.ord = 1), 0)::numeric(19, 2) AS penalty,
       coalesce(sum(t.take) FILTER (WHERE t.ord = 2), 0)::numeric(19, 2) AS fee,
       coalesce(sum(t.take) FILTER (WHERE t.ord = 3), 0)::numeric(19, 2) AS principal,
       d.closed AND coalesce(sum(t.take), 0) = d.pen_due + d.fee_due + d.prin_due AS settles,
       coalesce(sum(t.take), 0) = d.pen_due + d.fee_due + d.prin_due AS clears
  FROM due d LEFT JOIN taken t ON t.id = d.id
 GROUP BY d.id, d.company_id, d.credit_line_id, d.pen_due, d.fee_due, d.prin_due, d.closed
HAVING coalesce(sum(t.take), 0) > 0 OR (d.closed AND coalesce(sum(t.take), 0) = d.pen_due + d.fee_due + d.prin_due)
""".format(open_sql=advance_disbursement_open_sql("v"))


def repayments_collect_chunk(
    *, company_ids: list[int], business_date: date, pass_key: str, job_run: JobRun | None = None
) -> RepaymentTotals:
    """Collect what is due from the given companies. Call inside the chunk's transaction.

    `pass_key` names the collection pass ("run3", "close"): with the date and company it makes the unique
    reference of each repayment and its journal, so one pass never takes twice from a company.
    """
    totals = RepaymentTotals()
    if not company_ids:
        return totals
    currency = settings.ENGINE_CURRENCY
    states = [str(s) for s in ADVANCE_COLLECTABLE_STATES]
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock the settlement accounts first, in id order: the balance read below is the balance debited.
        cursor.execute(
            """
            SELECT a.id FROM ledger_account a JOIN funding_company c ON a.owner = c.code
             WHERE c.id = ANY(%s) AND a.kind = 'settlement' AND a.currency = %s
             ORDER BY a.id FOR NO KEY UPDATE OF a
            """,
            [company_ids, currency],
        )
        cursor.execute("DROP TABLE IF EXISTS nightly_alloc")
        cursor.execute(
            _ALLOCATE_SQL,
            {
                "company_ids": company_ids,
                "currency": currency,
                "states": states,
                "business_date": business_date,
                "disbursing": AdvanceStatus.DISBURSING.value,
            },
        )
        # Without statistics the planner guesses badly on the temporary table's joins.
        cursor.execute("ANALYZE nightly_alloc")
        cursor.execute(
            """
            SELECT company_id, count(*), count(*) FILTER (WHERE settles),
                   sum(penalty), sum(fee), sum(principal)
              FROM nightly_alloc GROUP BY company_id ORDER BY company_id
            """
        )
        per_company = cursor.fetchall()
        if not per_company:
            cursor.execute("DROP TABLE nightly_alloc")
            return totals
        cursor.execute(
            "SELECT credit_line_id, sum(principal) FROM nightly_alloc GROUP BY credit_line_id "
            "HAVING sum(principal) > 0 ORDER BY credit_line_id"
        )
        per_line = cursor.fetchall()

        companies = {c.id: c for c in Company.objects.filter(id__in=[row[0] for row in per_company])}
        accounts = {
            (a.owner, a.kind): a
            for a in Account.objects.filter(
                owner__in=[c.code for c in companies.values()],
                currency=currency,
                kind__in=[
                    AccountKind.SETTLEMENT,
                    AccountKind.PENALTY_RECEIVABLE,
                    AccountKind.FEE_RECEIVABLE,
                    AccountKind.ADVANCE_RECEIVABLE,
                ],
            )
        }
        repayment_rows: list[tuple[int, int]] = []
        for company_id, n_adv, n_settled, penalty, fee, principal in per_company:
            totals.advances += n_adv
            totals.advances_repaid += n_settled
            amount = penalty + fee + principal
            if amount <= 0:
                continue  # only advances with nothing left to pay: they are closed below, no money moves
            company = companies[company_id]
            reference = f"repay:{business_date.isoformat()}:{pass_key}:{company.code}"
            journal = ledger_post(
                kind="repayment",
                reference=reference,
                business_date=business_date,
                description=f"repayment from {company.code} settlement account",
                legs=[
                    debit(accounts[(company.code, AccountKind.SETTLEMENT)], amount),
                    credit(accounts[(company.code, AccountKind.PENALTY_RECEIVABLE)], penalty),
                    credit(accounts[(company.code, AccountKind.FEE_RECEIVABLE)], fee),
                    credit(accounts[(company.code, AccountKind.ADVANCE_RECEIVABLE)], principal),
                ],
            )
            repayment = Repayment.objects.create(
                reference=reference,
                company=company,
                business_date=business_date,
                currency=currency,
                amount=amount,
                penalty=penalty,
                fee=fee,
                principal=principal,
                journal=journal,
                job_run=job_run,
            )
            audit_record(
                action="repayment.collected",
                obj=repayment,
                actor_label=f"job:{job_run.job}" if job_run else "repayments",
                company=company,
                after={
                    "amount": str(amount),
                    "penalty": str(penalty),
                    "fee": str(fee),
                    "principal": str(principal),
                    "advances": n_adv,
                    "advances_repaid": n_settled,
                },
            )
            repayment_rows.append((company_id, repayment.pk))
            totals.repayments.append(repayment.pk)
            totals.companies += 1
            totals.amount += amount
            totals.penalty += penalty
            totals.fee += fee
            totals.principal += principal

        # The advances take their allocations (funding's set-based transition) in this same transaction.
        advances_apply_repayments(
            allocations_sql="SELECT advance_id, penalty, fee, principal, settles, clears FROM nightly_alloc"
        )
        if repayment_rows:
            cursor.execute(
                """
                INSERT INTO settlement_repaymentallocation
                       (repayment_id, advance_id, penalty, fee, principal, settles_advance)
                SELECT r.repayment_id, n.advance_id, n.penalty, n.fee, n.principal, n.settles
                  FROM nightly_alloc n
                  JOIN unnest(%s::bigint[], %s::bigint[]) AS r(company_id, repayment_id) USING (company_id)
                 WHERE n.penalty + n.fee + n.principal > 0
                 ORDER BY n.advance_id
                """,
                [[r[0] for r in repayment_rows], [r[1] for r in repayment_rows]],
            )
        for line_id, principal in per_line:
            line_reduce_outstanding(line_id=line_id, amount=principal)
        cursor.execute("DROP TABLE nightly_alloc")
    return totals
