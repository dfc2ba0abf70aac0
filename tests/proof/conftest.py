"""Real processes for the proof tests: gunicorn serving the test database, a Celery worker on Redis, a
loopback webhook receiver, signed HTTP requests, and a sampler watching the credit lines' counters."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

from advance_client import signed_headers, verify_webhook  # noqa: E402

FINAL_PAYOUT_STATES = ["succeeded", "failed", "cancelled", "manual_review"]
QUEUE_PREFIX = f"proof{os.getpid()}_"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker_url(settings):
    # This process never enqueues (its settings lack our queue prefix): it calls services directly.
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
    settings.WEBHOOK_ENQUEUE_ON_COMMIT = False
    settings.DISBURSEMENT_ROUTING_CACHE_SECONDS = 0
    url = os.environ.get("CELERY_BROKER_URL") or settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.skip("the proof tests need a Redis broker")
    yield url
    # Our queues only (their names carry this run's prefix): messages a killed worker left behind.
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{QUEUE_PREFIX}*"):
        client.delete(key)
    client.close()


def engine_env(broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of the engine's processes: the test database, our own queues, everything on commit."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE_PREFIX": QUEUE_PREFIX,
        "CACHE_URL": broker_url,
        "API_THROTTLE_RATE": "100000/s",
        "DISBURSEMENT_DISPATCH_ON_COMMIT": "true",
        "WEBHOOK_ENQUEUE_ON_COMMIT": "true",
        "DATABASE_CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class Process:
    """A child in its own process group, so a SIGKILL reaches all of it; output to var/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        (ROOT / "var").mkdir(exist_ok=True)
        self.log = open(ROOT / "var" / f"proof-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class Gunicorn(Process):
    def __init__(self, env: dict[str, str], workers: int = 3, timeout: int = 30):
        self.port = _free_port()
        super().__init__(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            {
                **env,
                "WEB_CONCURRENCY": str(workers),
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "GUNICORN_TIMEOUT": str(timeout),
                "GUNICORN_LOG_LEVEL": "warning",
            },
        )
        self.workers = workers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "gunicorn exited; see var/proof-gunicorn.log"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                if len(self.children()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("gunicorn did not start")


class CeleryWorker(Process):
    def __init__(self, env: dict[str, str], name: str = "worker", concurrency: int = 4):
        super().__init__(
            name,
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "-Q", f"{QUEUE_PREFIX}disbursement,{QUEUE_PREFIX}webhooks",
                "-c", str(concurrency), "-n", f"{name}-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "-l", "WARNING",
            ],
            env,
        )


class WebhookReceiver:
    """A loopback HTTP server that verifies each delivery's signature and records event ids."""

    def __init__(self):
        self.secrets: dict[str, str] = {}  # company code -> webhook secret
        self.received: dict[str, dict] = {}
        self.deliveries = 0
        self.bad: list[str] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = self.path.strip("/")
                try:
                    event = verify_webhook(receiver.secrets[code], dict(self.headers), raw)
                    with lock:
                        receiver.deliveries += 1
                        receiver.received[event["id"]] = event
                except (ValueError, KeyError) as exc:
                    with lock:
                        receiver.bad.append(f"{code}: {exc}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.port}/{code}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def database_dsn() -> str:
    db = connection.settings_dict
    return (
        f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname={db['NAME']}"
        + (f" password={db['PASSWORD']}" if db.get("PASSWORD") else "")
    )


class LimitSampler(threading.Thread):
    """Reads every credit line's reserved + outstanding against its effective limit, continuously."""

    def __init__(self):
        super().__init__(daemon=True)
        self.dsn = database_dsn()
        self.samples = 0
        self.violations: list[tuple] = []
        self.max_used: dict[int, Decimal] = {}
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._halt.is_set():
                for line_id, used, limit in conn.execute(
                    "SELECT id, reserved + outstanding, effective_limit FROM funding_creditline"
                ).fetchall():
                    self.samples += 1
                    self.max_used[line_id] = max(used, self.max_used.get(line_id, Decimal(0)))
                    if used > limit:
                        self.violations.append((line_id, used, limit))
                time.sleep(0.005)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class Api:
    """Signed requests on fresh connections; returns (status, parsed body, replayed header)."""

    def __init__(self, port: int, key: str, secret: str):
        self.port, self.key, self.secret = port, key, secret

    def post(self, path: str, body: dict | None, idem: str | None = None, timeout: float = 30) -> tuple:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        return self.send("POST", path, raw, idem or uuid.uuid4().hex, timeout)

    def get(self, path: str) -> tuple:
        return self.send("GET", path, b"", None, 30)

    def send(self, method: str, path: str, raw: bytes, idem: str | None, timeout: float) -> tuple:
        headers = signed_headers(self.key, self.secret, method, path, raw, idem)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=raw or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            body = json.loads(data) if data else None
            return response.status, body, response.getheader("Idempotent-Replayed") == "true"
        finally:
            conn.close()


def advance_body(tag: str, amounts: list[str], bank: str = "ICBC") -> dict:
    payouts = [
        {
            "external_id": f"{tag}-{i}",
            "beneficiary_name": "Shanghai Example Trading Co.",
            "account_no": f"62220202{i:011d}",
            "bank_code": bank,
            "amount": a,
        }
        for i, a in enumerate(amounts)
    ]
    total = sum(Decimal(a) for a in amounts)
    return {"external_id": tag, "amount": f"{total:.2f}", "currency": "CNY", "payouts": payouts}


def configure_channels(
    *, latency_ms: int, failure_rate: float, timeout_rate: float, unknown_codes: bool = True
) -> None:
    """`unknown_codes=False`: no failure code the channel's error map treats as an unknown outcome (HVPS's
    channel_error), so that every payout reaches a final state by itself, without manual review."""
    from settlement.models import Channel
    from settlement.models.channels import ErrorDecision
    from settlement.services.channels import SIMULATED_ERROR_CODES, channel_seed_simulated

    channel_seed_simulated()
    for channel in Channel.objects.all():
        codes = [
            c for c, _, decision in SIMULATED_ERROR_CODES[channel.code]
            if unknown_codes or decision != ErrorDecision.TREAT_AS_UNKNOWN
        ]
        channel.adapter_settings = {
            **channel.adapter_settings,
            "seed": 11,
            "latency_ms": latency_ms,
            "failure_rate": failure_rate,
            "timeout_rate": timeout_rate,
            "late_success_rate": 0.0,
            "failure_codes": codes,
        }
        channel.service_start = channel.service_end = None
        channel.runs_on_non_business_days = True
        channel.save()


def settle_everything(timeout: float, clock_ahead: int = 40) -> None:
    """Play beat in this process until every payout is final and every webhook event delivered.

    Status polls run with the clock `clock_ahead` seconds ahead, past the query back-off, so the test stays
    short; far enough ahead (and with a short DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS) an attempt whose
    outcome stays unknown goes to manual review, as it would after hours in production."""
    from datetime import timedelta

    from django.utils import timezone

    from funding.api.webhooks import webhook_deliver
    from funding.models import Payout, WebhookEvent
    from settlement.services.disbursement import advances_finish_sweep, attempts_poll_due

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts_poll_due(now=timezone.now() + timedelta(seconds=clock_ahead))
        open_payouts = Payout.objects.exclude(status__in=FINAL_PAYOUT_STATES).count()
        if open_payouts == 0:
            advances_finish_sweep()
        pending = list(WebhookEvent.objects.filter(status="pending").values_list("pk", flat=True))
        if open_payouts == 0 and not pending:
            return
        # What beat does: re-offer due events (here delivered in this process, a batch at a time) and
        # dispatch advances whose enqueue was lost.
        for pk in pending[:50]:
            webhook_deliver(event_id=pk)
        dispatch_stragglers()
        time.sleep(0.5)
    from django.db.models import Count

    raise AssertionError(
        "not settled: payouts "
        f"{dict(Payout.objects.values_list('status').annotate(n=Count('id')))}, webhooks "
        f"{dict(WebhookEvent.objects.values_list('status').annotate(n=Count('id')))}"
    )


def dispatch_stragglers() -> None:
    """What the settlement beat sweep does, in this process: dispatch advances still waiting."""
    from settlement.services.disbursement import advance_dispatch, advances_dispatch_due

    # A few per round: the worker does the bulk; this only rescues advances whose enqueue was lost.
    for advance_id in advances_dispatch_due()[:3]:
        advance_dispatch(advance_id=advance_id)
