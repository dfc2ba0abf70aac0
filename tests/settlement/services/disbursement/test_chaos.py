"""Chaos: a real Celery worker process on Redis, simulated channels misbehaving, and a SIGKILLed worker.

The test process plays beat: it enqueues the dispatch sweep and drives status polling until every payout is
succeeded, finally failed or in manual review.
"""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from funding.models import Payout
from funding.services.advances import PayoutInput, advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import Channel, PayoutAttempt, SimulatedChannelTransfer
from settlement.services.channels import SIMULATED_ERROR_CODES
from settlement.services.disbursement import advances_finish_sweep, attempts_poll_due
from tests.factories import company_with_line

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[4]
END_STATES = {"succeeded", "failed", "manual_review"}
REVIEW_AFTER_SECONDS = 4


@pytest.fixture
def broker(settings):
    url = os.environ.get("CELERY_BROKER_URL") or settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.skip("the chaos test needs a Redis broker")
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("disbursement")
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    return url


class Worker:
    """A real `celery worker` process on the test database, in its own process group (so SIGKILL hits all)."""

    def __init__(self, broker_url: str, name: str, concurrency: int = 8, batch_size: int | None = None):
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "WEBHOOK_ENQUEUE_ON_COMMIT": "false",
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{db['NAME']}",
            "CELERY_BROKER_URL": broker_url,
            "DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS": str(REVIEW_AFTER_SECONDS),
            "DISBURSEMENT_DISPATCH_ON_COMMIT": "true",
            "LOG_LEVEL": "WARNING",
            **({"DISBURSEMENT_BATCH_SIZE": str(batch_size)} if batch_size else {}),
        }
        (ROOT / "var").mkdir(exist_ok=True)
        self.log = open(ROOT / "var" / f"chaos-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "disbursement",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


def _configure_channels(latency_ms: int) -> None:
    for channel in Channel.objects.all():
        codes = [c for c, _, _ in SIMULATED_ERROR_CODES[channel.code]]
        channel.adapter_settings = {
            **channel.adapter_settings,
            "seed": 42,
            "latency_ms": latency_ms,
            "failure_rate": 0.10,
            "timeout_rate": 0.05,
            "late_success_rate": 0.02,
            "late_seconds": 1,
            "failure_codes": codes + ["UNMAPPED-1"],
        }
        channel.service_start = channel.service_end = None
        channel.runs_on_non_business_days = True
        channel.save()


def _advances(n_advances: int, per_advance: int) -> list[int]:
    rng = random.Random(7)  # noqa: S311
    companies = [company_with_line(limit="1000000000.00")[0] for _ in range(8)]
    ids = []
    for i in range(n_advances):
        # Amounts up to 100,000 and a share of own-bank accounts spread the payouts over all four channels.
        amounts = [Decimal(rng.randint(100, 10000000)) / 100 for _ in range(per_advance)]
        banks = [rng.choice(["ICBC", "ICBC", "CCB", "SELF"]) for _ in range(per_advance)]
        payouts = [
            PayoutInput(
                external_id=f"C{i}-{j}",
                beneficiary_name="Chaos Ltd",
                account_no=f"62220{j:08d}",
                bank_code=banks[j],
                amount=a,
            )
            for j, a in enumerate(amounts)
        ]
        advance = advance_request(
            company=companies[i % len(companies)],
            external_id=f"CHAOS-{i}",
            amount=sum(amounts),
            payouts=payouts,
        )
        ids.append(advance.pk)
    return ids


def _drive_until_settled(total: int, timeout: float) -> None:
    from settlement.tasks import dispatch_pending

    deadline = time.monotonic() + timeout
    last_sweep = 0.0
    while time.monotonic() < deadline:
        open_count = Payout.objects.exclude(status__in=END_STATES).count()
        if open_count == 0:
            advances_finish_sweep()
            return
        if time.monotonic() - last_sweep > 5:
            dispatch_pending.apply_async(retry=False)  # what beat does
            last_sweep = time.monotonic()
        # Status polling, with the clock moved past the first back-off step so the test stays short.
        attempts_poll_due(now=timezone.now() + timedelta(seconds=10))
        time.sleep(1)
    states = dict(Payout.objects.values_list("status").annotate(n=Count("id")))
    pytest.fail(f"payouts not settled in {timeout}s: {states}")


def _assert_invariants(total: int) -> dict:
    states = dict(Payout.objects.values_list("status").annotate(n=Count("id")))
    assert set(states) <= END_STATES and sum(states.values()) == total, states
    # No payout has two succeeded attempts; the bank side never paid a payout twice.
    assert (
        not PayoutAttempt.objects.values("payout")
        .annotate(s=Count("id", filter=Q(status="succeeded")))
        .filter(s__gt=1)
        .exists()
    )
    paid = {}
    for serial in SimulatedChannelTransfer.objects.filter(status="succeeded").values_list(
        "serial", flat=True
    ):
        public_id = serial.rsplit("-", 1)[0]
        paid[public_id] = paid.get(public_id, 0) + 1
    assert max(paid.values(), default=0) <= 1
    succeeded = set(Payout.objects.filter(status="succeeded").values_list("public_id", flat=True))
    assert succeeded <= set(paid)
    assert not (set(Payout.objects.filter(status="failed").values_list("public_id", flat=True)) & set(paid))
    # No attempt was sent while an earlier one of its payout was still live: each earlier attempt failed
    # (explicitly) before the next one was created.
    attempts = {}
    for a in PayoutAttempt.objects.order_by("payout_id", "number").values(
        "payout_id", "number", "status", "created_at", "resolved_at"
    ):
        attempts.setdefault(a["payout_id"], []).append(a)
    for chain in attempts.values():
        for earlier, later in zip(chain, chain[1:], strict=False):
            assert earlier["status"] == "failed" and earlier["resolved_at"] <= later["created_at"]
    # Ledger balances; each channel's in-transit equals its unresolved attempts.
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []
    for channel in Channel.objects.all():
        account = Account.objects.filter(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner=channel.code).first()
        in_transit = account.balance if account else Decimal("0.00")
        unresolved = PayoutAttempt.objects.filter(
            channel=channel, status__in=["processing", "unknown"]
        ).aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
        assert in_transit == unresolved, channel.code
    # Every advance whose payouts are all final is finished.
    from funding.models import Advance

    for advance in Advance.objects.prefetch_related("payouts"):
        if all(p.status in ("succeeded", "failed") for p in advance.payouts.all()):
            assert advance.status in ("disbursed", "partially_disbursed", "failed"), advance.public_id
        else:
            assert advance.status == "disbursing"
    return states


def test_chaos_2000_payouts_real_worker(business_day, channels, broker):
    _configure_channels(latency_ms=1)
    worker = Worker(broker, "chaos", concurrency=4)
    try:
        _advances(n_advances=20, per_advance=100)
        _drive_until_settled(2000, timeout=240)
    finally:
        worker.kill()
    states = _assert_invariants(2000)
    assert states.get("succeeded", 0) > 1600
    attempts = dict(PayoutAttempt.objects.values_list("status").annotate(n=Count("id")))
    assert attempts.get("failed", 0) > 100  # failures happened and were failed over or final
    print("chaos outcome:", states, attempts)


def test_sigkill_worker_mid_dispatch_then_new_worker(business_day, channels, broker, settings):
    _configure_channels(latency_ms=15)
    # Batches far smaller than the 300 payouts (a batch fills up across advances: at the default 250 the first
    # tasks could claim everything before the kill), so that the kill finds some claimed and some still pending.
    settings.DISBURSEMENT_BATCH_SIZE = 20
    first = Worker(broker, "doomed", concurrency=4, batch_size=20)
    try:
        _advances(n_advances=4, per_advance=75)
        deadline = time.monotonic() + 60
        while PayoutAttempt.objects.count() < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        first.kill()
    at_kill = dict(Payout.objects.values_list("status").annotate(n=Count("id")))
    assert at_kill.get("pending", 0) > 0, at_kill  # killed in the middle
    second = Worker(broker, "rescue", concurrency=4, batch_size=20)
    try:
        _drive_until_settled(300, timeout=90)
    finally:
        second.kill()
    states = _assert_invariants(300)
    print("killed at:", at_kill, "final:", states)
