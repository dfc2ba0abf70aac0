"""Integrity checks of the books against themselves and against the engine's counters.

- trial balance: the entries of every currency sum to zero (debits = credits);
- account totals: each account's stored debits_posted / credits_posted equal the sum of its entries;
- line outstanding: per company, the credit lines' `outstanding` equals its advance-receivable balance;
- in transit: per channel, the payouts-in-transit balance equals the attempts still unresolved there
  (processing or unknown: handed over, outcome not known).

Everything is read by ONE SQL statement, so the comparison is of one snapshot even while payouts and
postings go on (two queries could see a posting commit between them and report a difference that is not).
A run is stored as an IntegrityCheckRun; the latest failed run raises the metric
`engine_integrity_check_failed` and the console banner.
"""

from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from funding.selectors import KNOWN_OUT_STATES
from ledger.money import money
from settlement.models import AttemptStatus, IntegrityCheckRun, JobRun

UNRESOLVED_ATTEMPT_STATES = [AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN]

INTEGRITY_SQL = """
WITH entry_sums AS MATERIALIZED (
    -- the only scan of the entries: per account and currency
    SELECT account_id, currency,
           coalesce(sum(amount) FILTER (WHERE direction = 'D'), 0) AS d,
           coalesce(sum(amount) FILTER (WHERE direction = 'C'), 0) AS c
      FROM ledger_entry GROUP BY account_id, currency
), accounts AS (
    SELECT a.code, a.kind, a.owner, a.debits_posted, a.credits_posted,
           coalesce(s.d, 0) AS d, coalesce(s.c, 0) AS c
      FROM ledger_account a
      LEFT JOIN (SELECT account_id, sum(d) AS d, sum(c) AS c FROM entry_sums GROUP BY account_id) s
        ON s.account_id = a.id
), receivable AS (
    SELECT owner, sum(d - c) AS balance FROM accounts WHERE kind = 'advance_receivable' GROUP BY owner
), lines AS (
    SELECT co.code, sum(l.outstanding) AS outstanding, string_agg(l.id::text, ',' ORDER BY l.id) AS ids
      FROM funding_creditline l JOIN funding_company co ON co.id = l.company_id GROUP BY co.code
), unknown_out AS (
    -- Line parts handed to a channel with no known outcome: in the receivable, still `reserved` on the line
    -- (funding.selectors.credit_lines_unknown_out, contract 1.7).
    SELECT co.code, sum(p.advanced_amount) AS amount
      FROM funding_payout p JOIN funding_advance v ON v.id = p.advance_id
      JOIN funding_company co ON co.id = v.company_id
     WHERE p.funds_out AND NOT (p.status = ANY(%(known_out)s)) GROUP BY co.code
), in_transit AS (
    SELECT owner, sum(c - d) AS balance FROM accounts WHERE kind = 'payouts_in_transit' GROUP BY owner
), unresolved AS (
    SELECT ch.code, sum(pa.amount) AS amount, count(*) AS n
      FROM settlement_payoutattempt pa JOIN settlement_channel ch ON ch.id = pa.channel_id
     WHERE pa.status = ANY(%(unresolved)s) GROUP BY ch.code
)
SELECT 'trial_balance', currency, 0::numeric, sum(d - c), '' FROM entry_sums GROUP BY currency
UNION ALL
SELECT 'accounts_checked', '', count(*), count(*), '' FROM accounts
UNION ALL
SELECT 'account_debits', code, d, debits_posted, '' FROM accounts WHERE debits_posted <> d
UNION ALL
SELECT 'account_credits', code, c, credits_posted, '' FROM accounts WHERE credits_posted <> c
UNION ALL
SELECT 'line_outstanding', coalesce(l.code, r.owner), coalesce(r.balance, 0) - coalesce(u.amount, 0),
       coalesce(l.outstanding, 0), coalesce(l.ids, '')
  FROM lines l FULL JOIN receivable r ON r.owner = l.code LEFT JOIN unknown_out u ON u.code = coalesce(l.code, r.owner)
UNION ALL
SELECT 'unknown_out', code, amount, amount, '' FROM unknown_out
UNION ALL
SELECT 'in_transit', coalesce(t.owner, u.code), coalesce(u.amount, 0), coalesce(t.balance, 0),
       coalesce(u.n, 0)::text
  FROM in_transit t FULL JOIN unresolved u ON u.code = t.owner
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Problem:
    check: str  # trial_balance, account_totals, line_outstanding, in_transit
    subject: str  # the currency, account code, company code or channel code
    expected: str
    actual: str
    message: str


def _amount(value: Decimal) -> str:
    return f"{money(value):.2f}"


def integrity_problems() -> tuple[list[Problem], dict]:
    """Run every check (one statement, one snapshot). Returns the problems and the figures compared."""
    with connection.cursor() as cursor:
        cursor.execute(INTEGRITY_SQL, {"unresolved": [str(s) for s in UNRESOLVED_ATTEMPT_STATES],
                                       "known_out": [str(s) for s in KNOWN_OUT_STATES]})
        rows = cursor.fetchall()
    problems: list[Problem] = []
    figures: dict = {"trial_balance": {}, "accounts_checked": 0, "companies_checked": 0, "channels_checked": 0,
                     "advance_receivable_total": "0.00", "in_transit_total": "0.00"}
    receivable_total = in_transit_total = Decimal("0")
    for check, subject, expected, actual, extra in rows:
        if check == "trial_balance":
            figures["trial_balance"][subject] = _amount(actual)
            if actual != 0:
                side = "debits exceed credits" if actual > 0 else "credits exceed debits"
                problems.append(Problem(check, subject, "0.00", _amount(actual),
                                        f"trial balance of {subject} is off by {_amount(abs(actual))} ({side})"))
        elif check == "accounts_checked":
            figures["accounts_checked"] = int(actual)
        elif check in ("account_debits", "account_credits"):
            side = "debits" if check == "account_debits" else "credits"
            problems.append(Problem("account_totals", subject, _amount(expected), _amount(actual),
                                    f"account {subject}: stored {side} {_amount(actual)}, its entries sum to "
                                    f"{_amount(expected)}"))
        elif check == "line_outstanding":
            figures["companies_checked"] += 1
            receivable_total += expected
            if expected != actual:
                lines = f"line {extra}" if "," not in extra else f"lines {extra}"
                problems.append(Problem(check, subject, _amount(expected), _amount(actual),
                                        f"company {subject}: credit {lines or 'line'} outstanding "
                                        f"{_amount(actual)}, advance receivable balance {_amount(expected)} "
                                        "(less payouts out with no known outcome)"))
        elif check == "unknown_out":
            receivable_total += expected
        elif check == "in_transit":
            figures["channels_checked"] += 1
            in_transit_total += actual
            if expected != actual:
                problems.append(Problem(check, subject, _amount(expected), _amount(actual),
                                        f"channel {subject}: payouts in transit {_amount(actual)}, unresolved "
                                        f"attempts {_amount(expected)} ({extra} attempt(s))"))
    figures["advance_receivable_total"] = _amount(receivable_total)
    figures["in_transit_total"] = _amount(in_transit_total)
    return problems, figures


def integrity_check_run(
    *,
    triggered_by: str,
    business_date: date | None = None,
    job_run: JobRun | None = None,
    started_at: datetime | None = None,
) -> IntegrityCheckRun:
    """Run the checks and store the run (in the caller's transaction when there is one)."""
    started_at = started_at or timezone.now()
    problems, figures = integrity_problems()
    return IntegrityCheckRun.objects.create(
        business_date=business_date,
        job_run=job_run,
        triggered_by=triggered_by[:150],
        passed=not problems,
        problems=[asdict(p) for p in problems],
        figures=figures,
        started_at=started_at,
    )


def integrity_summary(run: IntegrityCheckRun) -> str:
    f = run.figures
    balance = ", ".join(f"{cur} {amount}" for cur, amount in sorted(f.get("trial_balance", {}).items())) or "-"
    text = (
        f"check_integrity: {'passed' if run.passed else 'FAILED'}: trial balance {balance}; "
        f"{f.get('accounts_checked', 0)} accounts, {f.get('companies_checked', 0)} companies "
        f"(receivable {f.get('advance_receivable_total', '0.00')}), {f.get('channels_checked', 0)} channels "
        f"(in transit {f.get('in_transit_total', '0.00')})"
    )
    if not run.passed:
        text += f"; {len(run.problems)} problem(s)"
    return text
