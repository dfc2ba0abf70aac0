"""Repayment collection: debit each company's settlement account for what is due, set-based per chunk.

Within a chunk of companies, one SQL statement computes every allocation with window functions: advances
oldest due first, and within an advance penalty, then fee, then principal, until the company's available
settlement balance (credits - debits - pending holds) runs out. Then, in the same transaction: one journal
transaction per company (Dr settlement; Cr penalty, fee and advance receivables), the allocations applied to
the advances by funding (a set-based transition naming the FSM's source states, with one `advance.repaid`
outbox event per advance repaid in full), one INSERT of the allocation rows, and the credit lines'
outstanding lowered.

The allocation and the booking are one definition for every source of repayment money: the nightly collection
(the settlement account's available balance) and an approved margin set-off (the amount staff set off from the
margin deposit, against overdue advances only; settlement.services.margin).

An advance still `disbursing` (a payout's outcome unknown) owes what its succeeded payouts paid and is collected
like any other (contract 1.7); paid in full it is not `repaid` while a payout may still add to what it owes
(`settles` false, `clears` true: an overdue one goes back to `disbursing`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from funding.models import ADVANCE_COLLECTABLE_STATES, AdvanceStatus, Company, advance_disbursement_open_sql
from funding.services.advances import advances_apply_repayments
from funding.services.audit import audit_record
from funding.services.line_counters import line_reduce_outstanding
from ledger.models import Account, AccountKind
from ledger.services import credit, debit, ledger_post
from settlement.models import JobRun, Repayment, RepaymentSource

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
    SELECT company_id, avail FROM unnest(%(company_ids)s::bigint[], %(amounts)s::numeric[]) AS a(company_id, avail)
),
due AS (
    -- What is due, as own funds exclude it (funding's advances_due(), funding/sql/advance_reserve.py), of the
    -- advances in `states` (all repayable ones for the collection, overdue ones for a margin set-off).
    SELECT d.id, d.company_id, d.credit_line_id, d.due_date, d.pen_due, d.fee_due, d.prin_due,
           v.status <> %(disbursing)s AND NOT {open_sql} AS closed
      FROM advances_due(%(company_ids)s::bigint[], %(currency)s, %(business_date)s::date) d
      JOIN funding_advance v ON v.id = d.id
     WHERE v.status = ANY(%(states)s)
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


# The account each source of repayment money debits.
SOURCE_ACCOUNT = {
    RepaymentSource.SETTLEMENT_DEBIT: AccountKind.SETTLEMENT,
    RepaymentSource.MARGIN_SETOFF: AccountKind.MARGIN,
}


def repayments_allocate(
    *, cursor, available: dict[int, Decimal], states: list[str], business_date: date, currency: str
) -> None:
    """Allocate each company's `available` amount to its advances in `states` due on or before `business_date`:
    oldest due first, within an advance penalty, then fee, then principal. The result is the temporary table
    `nightly_alloc` (advance_id, company_id, credit_line_id, penalty, fee, principal, settles), which
    `repayments_book` consumes and drops. Call inside the transaction that books it, with the source accounts
    locked."""
    cursor.execute("DROP TABLE IF EXISTS nightly_alloc")
    cursor.execute(
        _ALLOCATE_SQL,
        {
            "company_ids": list(available),
            "amounts": [available[c] for c in available],
            "currency": currency,
            "states": states,
            "business_date": business_date,
            "disbursing": AdvanceStatus.DISBURSING.value,
        },
    )
    # Without statistics the planner guesses badly on the temporary table's joins.
    cursor.execute("ANALYZE nightly_alloc")


def repayments_book(
    *,
    cursor,
    business_date: date,
    source: RepaymentSource,
    reference_for: Callable[[Company], str],
    description_for: Callable[[Company], str],
    job_run: JobRun | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    audit_action: str = "repayment.collected",
    audit_extra: dict | None = None,
) -> RepaymentTotals:
    """Book the allocations of `nightly_alloc` (repayments_allocate): per company one journal transaction
    (Dr the source's account; Cr penalty, fee and advance receivables) and one Repayment with its allocation
    rows; the advances take their allocations (funding's set-based transition, `advance.repaid` for each
    advance paid in full); the credit lines' outstanding falls by the principal. Drops `nightly_alloc`."""
    totals = RepaymentTotals()
    currency = settings.ENGINE_CURRENCY
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

    source_kind = SOURCE_ACCOUNT[RepaymentSource(source)]
    companies = {c.id: c for c in Company.objects.filter(id__in=[row[0] for row in per_company])}
    accounts = {
        (a.owner, a.kind): a
        for a in Account.objects.filter(
            owner__in=[c.code for c in companies.values()],
            currency=currency,
            kind__in=[
                source_kind,
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
        reference = reference_for(company)
        journal = ledger_post(
            kind="repayment",  # whatever the source: the company's statement counts it as repaid
            reference=reference,
            business_date=business_date,
            description=description_for(company),
            legs=[
                debit(accounts[(company.code, source_kind)], amount),
                credit(accounts[(company.code, AccountKind.PENALTY_RECEIVABLE)], penalty),
                credit(accounts[(company.code, AccountKind.FEE_RECEIVABLE)], fee),
                credit(accounts[(company.code, AccountKind.ADVANCE_RECEIVABLE)], principal),
            ],
        )
        repayment = Repayment.objects.create(
            reference=reference,
            company=company,
            business_date=business_date,
            source=source,
            currency=currency,
            amount=amount,
            penalty=penalty,
            fee=fee,
            principal=principal,
            journal=journal,
            job_run=job_run,
        )
        audit_record(
            action=audit_action,
            obj=repayment,
            actor=actor,
            actor_label=actor_label,
            company=company,
            after={
                "source": str(source),
                "amount": str(amount),
                "penalty": str(penalty),
                "fee": str(fee),
                "principal": str(principal),
                "advances": n_adv,
                "advances_repaid": n_settled,
                **(audit_extra or {}),
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


def repayments_collect_chunk(
    *, company_ids: list[int], business_date: date, pass_key: str, job_run: JobRun | None = None
) -> RepaymentTotals:
    """Collect what is due from the given companies. Call inside the chunk's transaction.

    `pass_key` names the collection pass ("run3", "close"): with the date and company it makes the unique
    reference of each repayment and its journal, so one pass never takes twice from a company.
    """
    if not company_ids:
        return RepaymentTotals()
    currency = settings.ENGINE_CURRENCY
    states = [str(s) for s in ADVANCE_COLLECTABLE_STATES]
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock the settlement accounts first, in id order: the balance read here is the balance debited.
        cursor.execute(
            """
            SELECT c.id, greatest(a.credits_posted - a.debits_posted - a.debits_pending, 0)
              FROM ledger_account a JOIN funding_company c ON a.owner = c.code
             WHERE c.id = ANY(%s) AND a.kind = 'settlement' AND a.currency = %s
             ORDER BY a.id FOR NO KEY UPDATE OF a
            """,
            [company_ids, currency],
        )
        available = dict(cursor.fetchall())
        if not available:
            return RepaymentTotals()
        repayments_allocate(
            cursor=cursor, available=available, states=states, business_date=business_date, currency=currency
        )
        return repayments_book(
            cursor=cursor,
            business_date=business_date,
            source=RepaymentSource.SETTLEMENT_DEBIT,
            reference_for=lambda company: f"repay:{business_date.isoformat()}:{pass_key}:{company.code}",
            description_for=lambda company: f"repayment from {company.code} settlement account",
            job_run=job_run,
            actor_label=f"job:{job_run.job}" if job_run else "repayments",
        )
