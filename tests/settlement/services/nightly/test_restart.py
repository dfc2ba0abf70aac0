"""A close killed with SIGKILL in the middle and started again ends with exactly the ledger of an
uninterrupted close. The command runs in a subprocess against the test database (one company per chunk).

Where it dies is set from outside, as a real fault would be, with no hook in the engine: another connection
holds a lock the chosen chunk needs; once the command has committed the chunks before it and waits on that
lock, it is SIGKILLed in the middle of the chunk's transaction, and the lock is let go.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from funding.models import Advance, BusinessDay, ChangeRequestKind, CreditLine
from funding.services.credit_lines import change_request_approve, change_request_propose
from ledger.models import Account, Entry
from settlement.models import JobRun, JobRunStatus, Repayment, RepaymentAllocation
from settlement.services.nightly import business_day_close
from tests.factories import calendar_and_business_date, company_with_line, staff_user
from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

ROOT = Path(__file__).resolve().parents[4]


def _build() -> None:
    calendar_and_business_date()
    plans = [
        ("RS-A", "30000.00"),
        ("RS-B", "1500.00"),
        ("RS-C", None),
        ("RS-D", "999999.00"),
        ("RS-E", "10.00"),
    ]
    for code, _ in plans:
        company, line = company_with_line(code=code, auto_unfreeze=(code == "RS-D"))
        disbursed_advance(company, "10000.00", external_id=f"{code}-1")
        disbursed_advance(company, "2000.00", "3000.00", external_id=f"{code}-2")
        # A flow factor, so that the close recomputes limits too (approved after the advances: at approval the
        # limit is already the minimum of the factors, contract 1.7).
        change_request_approve(
            request=change_request_propose(
                credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(), reason="flow factor",
                proposed={"flow_multiple": "3", "flow_window_days": 2},
            ),
            checker=staff_user(),
        )
    business_day_close()  # Wednesday: nothing due yet
    for code, amount in plans:
        if amount:
            from funding.models import Company

            credit_settlement(Company.objects.get(code=code), amount, reference=f"CLR-{code}")


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _close_command() -> list[str]:
    return [sys.executable, "manage.py", "close_business_day"]


def _env() -> dict:
    return {**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": _database_url(), "NIGHTLY_CHUNK_COMPANIES": "1",
            "WEBHOOK_ENQUEUE_ON_COMMIT": "false"}


def _run_close() -> subprocess.CompletedProcess:
    return subprocess.run(_close_command(), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)


def _run_close_killed_at(lock_sql: str, params: list) -> subprocess.CompletedProcess:
    """Run the close while another connection holds the lock of `lock_sql`; SIGKILL it once it waits there."""
    with psycopg.connect(_database_url()) as blocker:
        blocker.execute(lock_sql, params)  # psycopg opened a transaction: the lock is held until rollback
        process = subprocess.Popen(
            _close_command(), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        waiting = 0
        while not waiting and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            # Asked on the test's own connection: a transaction sees pg_stat_activity as of its first look.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> %s",
                    [blocker.info.backend_pid],
                )
                waiting = cursor.fetchone()[0]
        if waiting:
            process.send_signal(signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)
        blocker.rollback()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# The repayment pass locks each company's settlement account: holding RS-D's stops it at the 4th chunk.
_SETTLEMENT_ACCOUNT_OF_RS_D = "SELECT id FROM ledger_account WHERE kind = 'settlement' AND owner = %s FOR UPDATE"
# The penalty step inserts accruals: holding their table stops it inside its first chunk.
_PENALTY_TABLE = "LOCK TABLE funding_penaltyaccrual IN SHARE MODE"


def _fingerprint() -> dict:
    return {
        "entries": sorted(
            Entry.objects.exclude(
                transaction__kind__in=["advance.fee", "payout.funds_out", "payout.confirmed"]
            ).values_list(
                "transaction__reference", "account__code", "direction", "amount"
            )
        ),
        "balances": sorted(
            Account.objects.values_list("code", "debits_posted", "credits_posted", "debits_pending")
        ),
        "advances": sorted(
            Advance.objects.values_list(
                "external_id",
                "status",
                "principal_repaid",
                "fee_repaid",
                "penalty_repaid",
                "penalty_accrued_exact",
                "aging_bucket",
            )
        ),
        "lines": sorted(
            CreditLine.objects.values_list(
                "company__code", "status", "outstanding", "effective_limit", "limit_factors"
            )
        ),
        "repayments": sorted(
            Repayment.objects.values_list("reference", "amount", "penalty", "fee", "principal")
        ),
        "allocations": sorted(
            RepaymentAllocation.objects.values_list(
                "repayment__reference",
                "advance__external_id",
                "penalty",
                "fee",
                "principal",
                "settles_advance",
            )
        ),
        "events": sorted(Advance.objects.values_list("company__code", "company__webhook_events__type")),
        "business_day": list(BusinessDay.objects.values_list("current", "closing")),
    }


@pytest.mark.django_db(transaction=True)
def test_killed_close_resumes_to_the_ledger_of_an_uninterrupted_close():
    _build()
    killed = _run_close_killed_at(_SETTLEMENT_ACCOUNT_OF_RS_D, ["RS-D"])  # in the 4th chunk of the repayments
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = JobRun.objects.get(job="close_business_day", status=JobRunStatus.RUNNING)
    assert (run.step, run.chunks_done) == ("repay", 3)
    assert BusinessDay.objects.get().closing is True
    killed = _run_close_killed_at(_PENALTY_TABLE, [])  # again, further on: in the penalty step's first chunk
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run.refresh_from_db()
    assert (run.step, run.cursor) == ("penalty", 0)
    resumed = _run_close()
    assert resumed.returncode == 0, resumed.stderr
    assert "close_business_day 2026-11-26" in resumed.stdout
    run.refresh_from_db()
    assert (run.status, run.attempts) == (JobRunStatus.SUCCEEDED, 3)
    interrupted = _fingerprint()

    call_command("flush", interactive=False, verbosity=0)
    _build()
    straight = _run_close()
    assert straight.returncode == 0, straight.stderr
    assert JobRun.objects.get(job="close_business_day", business_date="2026-11-26").attempts == 1
    uninterrupted = _fingerprint()

    assert interrupted == uninterrupted
    assert any(ref.startswith("penalty:") for ref, *_ in uninterrupted["entries"])
    assert any(ref.startswith("repay:2026-11-26:close:") for ref, *_ in uninterrupted["entries"])

    again = _run_close()  # closes Friday now; the Thursday close is not repeated
    assert again.returncode == 0
    assert JobRun.objects.filter(job="close_business_day", business_date="2026-11-26").count() == 1
