"""Benchmark of the nightly jobs (not a test): N due advances over C companies, some companies short of funds.

    DATABASE_URL=postgres://... DJANGO_ENV=test .venv/bin/python bench/nightly.py --n 100000

Works in its own database, <DATABASE_URL's name>_bench, dropped and migrated at the start. Builds the data
with set-based SQL, then times:
  - engine: collect_repayments (the repayment pass), then close_business_day (overdue, freeze, penalties,
    limits, aging, next date);
  - baseline: plain SQL doing the equivalent set-based repayment on a copy of the advances: the same
    allocation query, one UPDATE of the advances and the INSERT of the journal rows (one journal
    transaction of four entries per company), with no events, allocations, triggers or job bookkeeping.
Prints advances per second, the engine/baseline ratio and the peak memory of this process.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/advance_engine")
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") + "_bench"
    return urlunparse(parsed._replace(path="/" + name)), name


def _recreate_database(url: str, name: str) -> None:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="due advances (default 1,000,000)")
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--short-every", type=int, default=5, help="every k-th company is short of funds")
    parser.add_argument("--chunk-size", type=int, default=None, help="companies per transaction")
    parser.add_argument(
        "--profile", action="store_true", help="print the slowest SQL statements of the engine"
    )
    args = parser.parse_args()

    url, name = _bench_database_url()
    _recreate_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_ENV", "test")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The bench has no worker: deliveries are not enqueued on commit (the settings no longer tie that to tests).
    os.environ.setdefault("WEBHOOK_ENQUEUE_ON_COMMIT", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _build(n=args.n, companies=args.companies, short_every=args.short_every)
    print(
        f"built {args.n:,} due advances over {args.companies} companies "
        f"in {time.perf_counter() - started:.1f}s"
    )

    baseline = _baseline()
    baseline_same_rows = _baseline(same_rows=True)
    from contextlib import nullcontext

    from django.db import connection

    from settlement.services.nightly import business_day_close, job_run_summary, repayments_collect_run

    profile: dict[str, list[float]] = {}

    def timed(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = profile.setdefault(" ".join(sql.split())[:90], [0.0, 0])
            entry[0] += time.perf_counter() - t
            entry[1] += 1

    with connection.execute_wrapper(timed) if args.profile else nullcontext():
        t0 = time.perf_counter()
        collect = repayments_collect_run(chunk_size=args.chunk_size)
        t_collect = time.perf_counter() - t0
        if args.profile:
            for sql, (spent, calls) in sorted(profile.items(), key=lambda kv: -kv[1][0])[:10]:
                print(f"  {spent:7.2f}s {calls:5d}x  {sql}")
            profile.clear()
        t0 = time.perf_counter()
        close = business_day_close(chunk_size=args.chunk_size)
        t_close = time.perf_counter() - t0
        if args.profile:
            for sql, (spent, calls) in sorted(profile.items(), key=lambda kv: -kv[1][0])[:10]:
                print(f"  {spent:7.2f}s {calls:5d}x  {sql}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(job_run_summary(collect.run))
    print(job_run_summary(close.run))
    print(f"baseline (plain SQL repayment)  {baseline:8.2f}s  {args.n / baseline:>12,.0f} advances/s")
    print(f"engine collect_repayments       {t_collect:8.2f}s  {args.n / t_collect:>12,.0f} advances/s")
    print(f"engine close_business_day       {t_close:8.2f}s  {args.n / t_close:>12,.0f} advances/s")
    print(
        f"baseline writing the same rows  {baseline_same_rows:8.2f}s  "
        f"{args.n / baseline_same_rows:>12,.0f} advances/s"
    )
    print(f"ratio collect / baseline        {t_collect / baseline:8.2f}x")
    print(f"ratio collect / same-rows base  {t_collect / baseline_same_rows:8.2f}x")
    print(f"peak memory (this process)      {peak_mb:8.1f} MB")
    _check()


def _build(*, n: int, companies: int, short_every: int) -> None:
    from datetime import date

    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from funding.models import BusinessDay, Company
    from funding.services.calendar import business_date_initialize, calendar_seed_year
    from funding.services.credit_lines import change_request_approve, company_create, credit_line_create
    from ledger.models import Account, AccountKind
    from ledger.services import account_get_or_create, credit, debit, ledger_post

    calendar_seed_year(year=2026)
    business_date_initialize(current=date(2026, 11, 25))
    maker = User.objects.create_user("bench-maker", is_staff=True)
    checker = User.objects.create_user("bench-checker", is_staff=True)
    for i in range(1, companies + 1):
        company = company_create(
            code=f"B{i:04d}",
            legal_name=f"Bench {i}",
            settlement_account_no=f"31{i:012d}",
            margin_account_no=f"32{i:012d}",
        )
        line = credit_line_create(
            company=company,
            actor=maker,
            terms={
                "approved_limit": "900000000000.00",
                "daily_fee_rate": "0.000300",
                "penalty_rate": "0.000500",
                "valid_from": "2026-01-01",
                "valid_to": "2027-12-31",
            },
        )
        change_request_approve(request=line.change_requests.get(), checker=checker)
    with connection.cursor() as cursor:
        # Advances of Wednesday 2026-11-25, disbursed, due Thursday: amount 1000.00 + (i mod 997) / 100.
        cursor.execute(
            """
            INSERT INTO funding_advance
                   (public_id, company_id, credit_line_id, external_id, status, currency, amount,
                    own_funds_amount, advanced_amount, disbursed_amount, advanced_disbursed, fee,
                    daily_fee_rate, business_date, due_date, principal_repaid, fee_repaid, penalty_accrued,
                    penalty_repaid, penalty_accrued_exact, overdue_since, aging_bucket, version, created_at,
                    updated_at)
            SELECT 'adv_bench' || g, c.id, l.id, 'BENCH' || g, 'disbursed', 'CNY', a.amt,
                   0, a.amt, a.amt, a.amt,
                   round(a.amt * 0.0003, 2), 0.0003, '2026-11-25', '2026-11-26', 0, 0, 0, 0, 0,
                   NULL, '', 2, now(), now()
              FROM generate_series(1, %s) g
              JOIN funding_company c ON c.code = 'B' || lpad(((g %% %s) + 1)::text, 4, '0')
              JOIN funding_creditline l ON l.company_id = c.id
             CROSS JOIN LATERAL (SELECT (1000 + (g %% 997) / 100.0)::numeric(19, 2) AS amt) a
            """,
            [n, companies],
        )
        cursor.execute(
            """
            UPDATE funding_creditline l SET outstanding = s.principal, limit_ceiling = l.effective_limit
              FROM (SELECT credit_line_id, sum(advanced_disbursed) AS principal FROM funding_advance
                     GROUP BY credit_line_id) s
             WHERE l.id = s.credit_line_id
            """
        )
        cursor.execute(
            "SELECT c.code, sum(v.advanced_disbursed), sum(v.fee) FROM funding_advance v "
            "JOIN funding_company c ON c.id = v.company_id GROUP BY c.code ORDER BY c.code"
        )
        totals = cursor.fetchall()
        cursor.execute("ANALYZE")
    business_date = date(2026, 11, 25)
    clearing = account_get_or_create(kind=AccountKind.BANK_CLEARING)
    fee_income = account_get_or_create(kind=AccountKind.FEE_INCOME)
    accounts = {(a.owner, a.kind): a for a in Account.objects.exclude(owner="")}
    for index, (code, principal, fee) in enumerate(totals, start=1):
        with transaction.atomic():
            # What disbursement would have posted (funds out, fee), condensed into one journal per company.
            ledger_post(
                kind="bench.seed",
                reference=f"bench:{code}",
                business_date=business_date,
                legs=[
                    debit(accounts[(code, AccountKind.ADVANCE_RECEIVABLE)], principal),
                    debit(accounts[(code, AccountKind.FEE_RECEIVABLE)], fee),
                    credit(clearing, principal),
                    credit(fee_income, fee),
                ],
            )
            # T+1 clearing funds: enough, except for every k-th company which gets half of what is due.
            funds = (principal + fee) / 2 if index % short_every == 0 else principal + fee + 1000
            ledger_post(
                kind="bench.funds",
                reference=f"bench:funds:{code}",
                business_date=business_date,
                legs=[debit(clearing, funds), credit(accounts[(code, AccountKind.SETTLEMENT)], funds)],
            )
    BusinessDay.objects.update(current=date(2026, 11, 26))
    print(f"{len(Company.objects.all())} companies; every {short_every}th short of funds")


def _baseline(*, same_rows: bool = False) -> float:
    """The equivalent repayment in plain SQL on copies of the tables; returns its time in seconds.

    same_rows: also write what the engine writes per advance besides the UPDATE (one allocation row and,
    for each advance repaid in full, one outbox event with the advance's JSON), into plain copies.
    """
    from django.db import connection, transaction

    from funding.services.events import ADVANCE_DATA_SQL

    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TABLE IF EXISTS bench_advance, bench_journal, bench_entry, bench_alloc_rows, bench_event"
        )
        cursor.execute("CREATE TABLE bench_advance (LIKE funding_advance INCLUDING ALL)")
        cursor.execute("INSERT INTO bench_advance SELECT * FROM funding_advance")
        cursor.execute("CREATE TABLE bench_journal (LIKE ledger_journaltransaction INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_entry (LIKE ledger_entry INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_alloc_rows (LIKE settlement_repaymentallocation INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_event (LIKE funding_webhookevent INCLUDING ALL)")
        cursor.execute("ANALYZE bench_advance")
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE bench_alloc ON COMMIT DROP AS
            WITH avail AS (
                SELECT c.id AS company_id, a.credits_posted - a.debits_posted - a.debits_pending AS avail
                  FROM funding_company c JOIN ledger_account a ON a.owner = c.code AND a.kind = 'settlement'),
            parts AS (
                SELECT v.id, v.company_id, p.ord, p.amt,
                       sum(p.amt) OVER (PARTITION BY v.company_id ORDER BY v.due_date, v.id, p.ord
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
                  FROM bench_advance v
                 CROSS JOIN LATERAL (VALUES (1, v.penalty_accrued - v.penalty_repaid),
                                            (2, v.fee - v.fee_repaid),
                                            (3, v.advanced_disbursed - v.principal_repaid)) AS p(ord, amt)
                 WHERE v.status IN ('disbursed', 'partially_disbursed', 'overdue')
                   AND v.due_date <= '2026-11-26'
                   AND p.amt > 0)
            SELECT p.id, p.company_id,
                   sum(least(p.amt, greatest(av.avail - (p.upto - p.amt), 0))) FILTER (WHERE ord = 1) AS pen,
                   sum(least(p.amt, greatest(av.avail - (p.upto - p.amt), 0))) FILTER (WHERE ord = 2) AS fee,
                   sum(least(p.amt, greatest(av.avail - (p.upto - p.amt), 0))) FILTER (WHERE ord = 3) AS prin,
                   sum(p.amt) AS due
              FROM parts p JOIN avail av USING (company_id) GROUP BY p.id, p.company_id
            """
        )
        cursor.execute(
            """
            UPDATE bench_advance v
               SET penalty_repaid = v.penalty_repaid + coalesce(b.pen, 0),
                   fee_repaid = v.fee_repaid + coalesce(b.fee, 0),
                   principal_repaid = v.principal_repaid + coalesce(b.prin, 0),
                   status = CASE WHEN coalesce(b.pen, 0) + coalesce(b.fee, 0) + coalesce(b.prin, 0) = b.due
                                 THEN 'repaid' ELSE v.status END,
                   version = v.version + 1, updated_at = now()
              FROM bench_alloc b
             WHERE v.id = b.id AND coalesce(b.pen, 0) + coalesce(b.fee, 0) + coalesce(b.prin, 0) > 0
            """
        )
        cursor.execute(
            """
            WITH per_company AS (
                SELECT b.company_id, c.code, sum(coalesce(b.pen, 0)) AS pen, sum(coalesce(b.fee, 0)) AS fee,
                       sum(coalesce(b.prin, 0)) AS prin
                  FROM bench_alloc b JOIN funding_company c ON c.id = b.company_id
                 GROUP BY b.company_id, c.code),
            journals AS (
                INSERT INTO bench_journal (id, kind, description, business_date, reference, created_at)
                SELECT nextval('ledger_journaltransaction_id_seq'), 'repayment', '', '2026-11-26',
                       'baseline:' || code, now() FROM per_company
                RETURNING id, reference)
            INSERT INTO bench_entry (transaction_id, account_id, direction, amount, currency)
            SELECT j.id, a.id, e.dir, e.amt, 'CNY'
              FROM per_company p JOIN journals j ON j.reference = 'baseline:' || p.code
             CROSS JOIN LATERAL (VALUES ('settlement', 'D', p.pen + p.fee + p.prin),
                                        ('penalty_receivable', 'C', p.pen),
                                        ('fee_receivable', 'C', p.fee), ('advance_receivable', 'C', p.prin))
                   AS e(kind, dir, amt)
              JOIN ledger_account a ON a.owner = p.code AND a.kind = e.kind
             WHERE e.amt > 0
            """
        )
        if same_rows:
            cursor.execute(
                """
                INSERT INTO bench_alloc_rows
                       (repayment_id, advance_id, penalty, fee, principal, settles_advance)
                SELECT b.company_id, b.id, coalesce(b.pen, 0), coalesce(b.fee, 0), coalesce(b.prin, 0),
                       coalesce(b.pen, 0) + coalesce(b.fee, 0) + coalesce(b.prin, 0) = b.due
                  FROM bench_alloc b WHERE coalesce(b.pen, 0) + coalesce(b.fee, 0) + coalesce(b.prin, 0) > 0
                """
            )
            cursor.execute(
                f"""
                INSERT INTO bench_event
                       (public_id, company_id, type, resource_type, resource_id, resource_version, payload,
                        status, attempt_count, next_attempt_at, last_error, created_at)
                SELECT 'evt_' || v.id, v.company_id, 'advance.repaid', 'advance', v.public_id, v.version,
                       json_build_object('id', 'evt_' || v.id, 'data', {ADVANCE_DATA_SQL}),
                       'pending', 0, now(), '', now()
                  FROM bench_advance v WHERE v.status = 'repaid'
                """
            )
    elapsed = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE status = 'repaid') FROM bench_advance")
        repaid = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_advance, bench_journal, bench_entry, bench_alloc_rows, bench_event")
    print(f"baseline{' (same rows)' if same_rows else ''} repaid {repaid:,} advances in {elapsed:.2f}s")
    return elapsed


def _check() -> None:
    from ledger.selectors import account_totals_drift, trial_balance

    print(f"trial balance {trial_balance()}; account drift rows {len(account_totals_drift())}")


if __name__ == "__main__":
    main()
