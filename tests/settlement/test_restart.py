"""A close killed with SIGKILL in the middle and started again ends with exactly the ledger of an
uninterrupted close. The command runs in a subprocess against the test database; a test-only hook
SIGKILLs it after N committed chunks (one company per chunk)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from funding.models import Advance, BusinessDay, CreditLine
from ledger.models import Account, Entry
from settlement.models import JobRun, JobRunStatus, Repayment, RepaymentAllocation
from settlement.services.end_of_day import business_day_close
from tests.factories import calendar_and_business_date, company_with_line
from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

ROOT = Path(__file__).resolve().parents[2]


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
        company, _ = company_with_line(
            code=code, auto_unfreeze=(code == "RS-D"), flow_multiple="3", flow_window_days=2
        )
        disbursed_advance(company, "10000.00", external_id=f"{code}-1")
        disbursed_advance(company, "2000.00", "3000.00", external_id=f"{code}-2")
    business_day_close()  # Wednesday: nothing due yet
    for code, amount in plans:
        if amount:
            from funding.models import Company

            credit_settlement(Company.objects.get(code=code), amount, reference=f"CLR-{code}")


def _run_close(kill_after: int | None = None) -> subprocess.CompletedProcess:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "NIGHTLY_CHUNK_COMPANIES": "1",
    }
    env.pop("NIGHTLY_TEST_SIGKILL_AFTER_CHUNKS", None)
    if kill_after is not None:
        env["NIGHTLY_TEST_SIGKILL_AFTER_CHUNKS"] = str(kill_after)
    return subprocess.run(
        [sys.executable, "manage.py", "close_business_day"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _fingerprint() -> dict:
    return {
        "entries": sorted(
            Entry.objects.exclude(transaction__kind__in=["advance.fee", "payout.funds_out"]).values_list(
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
    killed = _run_close(kill_after=3)  # after 3 chunks: in the middle of the repayment pass
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = JobRun.objects.get(job="close_business_day", status=JobRunStatus.RUNNING)
    assert (run.step, run.chunks_done) == ("repay", 3)
    assert BusinessDay.objects.get().closing is True
    killed = _run_close(kill_after=9)  # again, further on (in the overdue/penalty steps)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
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
