"""Shared machinery of the API benchmarks: a fresh database, seeding, gunicorn, a load generator, pgbench.

Used by bench/api.py (requests spread over 100 companies) and bench/hot_company.py (all on one company).
The load generator runs in this (the controlling) process, separate from the gunicorn processes; it signs
its requests with clients/python/advance_client before each measurement starts (Prebuilt) and sends them on
raw sockets, so that its CPU, taken from the cores the engine runs on, stays small.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT))

from advance_client import signed_headers  # noqa: E402

PAYOUTS_PER_ADVANCE = 3
PAYOUT_AMOUNT = "100.00"
ADVANCE_AMOUNT = "300.00"


# --------------------------------------------------------------------------------------------------- setup


def database_urls(name: str) -> tuple[str, str]:
    """(admin URL on the server's `postgres` database, URL of the bench database `name`)."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(base)
    admin = urlunparse(parsed._replace(path="/postgres"))
    return admin, urlunparse(parsed._replace(path=f"/{name}"))


def database_recreate(name: str) -> str:
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"bad database name {name!r}")
    admin, url = database_urls(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


def database_drop(name: str) -> None:
    import psycopg

    admin, _ = database_urls(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def engine_env(db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of every engine process of the bench (migrate, seed, gunicorn)."""
    return {
        **os.environ,
        "DJANGO_ENV": "local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker_url,
        "API_THROTTLE_RATE": "1000000/s",  # the bench measures the engine, not the per-key throttle
        "DISBURSEMENT_DISPATCH_ON_COMMIT": "false",  # measure the API path, not the payout workers
        "WEBHOOK_ENQUEUE_ON_COMMIT": "false",
        "DATABASE_CONN_MAX_AGE": "600",  # persistent connections (docs/deployment.md)
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        # Throttle counters in Redis when there is one, not in a PostgreSQL table.
        **({"CACHE_URL": broker_url} if broker_url.startswith("redis://") else {}),
        **extra,
    }


SEED_CODE = r"""
import json, sys
from datetime import date, datetime
from zoneinfo import ZoneInfo
import django
django.setup()
from django.contrib.auth.models import User
from funding.api.services import api_key_issue
from funding.services.calendar import business_date_initialize, calendar_seed_year, is_business_day, next_business_day
from funding.services.credit_lines import change_request_approve, company_create, credit_line_create

specs = json.loads(sys.argv[1])
today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
for year in (today.year, today.year + 1):
    calendar_seed_year(year=year)
business_date_initialize(current=today if is_business_day(today) else next_business_day(today))
# The simulated channels, as in every real engine: advance_reserve() checks each payout against what they can
# pay on the business date (contract 1.7, D0); the payouts here (100.00) fit IBPS at any hour.
from settlement.services.channels import channel_seed_simulated
channel_seed_simulated()
maker = User.objects.create_user("bench_maker", is_staff=True)
checker = User.objects.create_user("bench_checker", is_staff=True)
out = []
for i, spec in enumerate(specs):
    company = company_create(code=spec["code"], legal_name=f"Bench Company {i}",
                             settlement_account_no=f"3100{i:010d}", margin_account_no=f"3200{i:010d}")
    line = credit_line_create(company=company, actor=maker, terms={
        "approved_limit": spec["limit"], "daily_fee_rate": "0.000300", "penalty_rate": "0.000500",
        "valid_from": date(today.year, 1, 1).isoformat(), "valid_to": date(today.year + 1, 12, 31).isoformat()})
    change_request_approve(request=line.change_requests.get(), checker=checker)
    issued = api_key_issue(company=company, actor_label="bench", label="bench")
    out.append({"code": company.code, "line_id": line.pk, "key": issued.key_id, "secret": issued.secret})
print("SEED " + json.dumps(out))
"""


def engine_prepare(env: dict[str, str], companies: list[dict]) -> list[dict]:
    """migrate, then companies with active lines and API keys through the services (one process, fast)."""
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [python, "-c", SEED_CODE, json.dumps(companies)],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("SEED "))
    return json.loads(line[5:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """`gunicorn -c config/gunicorn.py config.wsgi` in its own process group."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path):
        self.port = free_port()
        self.log = open(log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env={
                **env,
                "WEB_CONCURRENCY": str(workers),
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "GUNICORN_MAX_REQUESTS": "0",  # no recycling in the middle of a measurement
                "GUNICORN_LOG_LEVEL": "warning",
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers = workers

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                if len(self.worker_pids()) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(x) for x in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


# ---------------------------------------------------------------------------------------------- load


def advance_body() -> bytes:
    tag = uuid.uuid4().hex[:20]
    payouts = [
        {
            "external_id": f"P{tag}-{i}",
            "beneficiary_name": "Shanghai Example Trading Co.",
            "account_no": "6222020200112233445",
            "bank_code": "ICBC",
            "amount": PAYOUT_AMOUNT,
        }
        for i in range(PAYOUTS_PER_ADVANCE)
    ]
    body = {"external_id": f"B{tag}", "amount": ADVANCE_AMOUNT, "currency": "CNY", "payouts": payouts}
    return json.dumps(body, separators=(",", ":")).encode()


def request_build(port: int, company: dict, body: bytes | None = None, key: str | None = None) -> bytes:
    """The bytes of one signed POST /api/v1/advances (new body, idempotency key, nonce and timestamp)."""
    body = body or advance_body()
    path = "/api/v1/advances"
    headers = signed_headers(company["key"], company["secret"], "POST", path, body, key or uuid.uuid4().hex)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{lines}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def request_send(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request on a fresh connection (gunicorn sync workers do not keep alive); (status, body).

    Written straight to a socket rather than through http.client: the load generator shares the machine's
    cores with the engine, so every microsecond it spends is taken from the figure it measures.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    header, _, payload = response.partition(b"\r\n\r\n")
    if not header.startswith(b"HTTP/1."):
        raise OSError(f"not an HTTP response: {response[:40]!r}")
    return int(header[9:12]), payload


def post_advance(port: int, company: dict, body: bytes | None = None, key: str | None = None) -> tuple[int, bytes]:
    """One signed POST /api/v1/advances, built and sent."""
    return request_send(port, request_build(port, company, body, key))


# Requests signed before a measurement starts, per second of it: above the engine's peak on 2 cores (~600/s).
PREBUILT_PER_SECOND = 700


class Prebuilt:
    """Signed requests built before the clock starts, for random companies; taken once each, thread-safe.

    Real clients sign on their own machines: signing here during a measurement (~0.15 ms per request in this
    process) would take a core's time from the engine the load generator shares the machine with. The
    timestamps stay well within the API's 300 s window; a measurement that outruns the stock signs the rest
    on the fly (counted in `late`).
    """

    def __init__(self, port: int, companies: list[dict], count: int, seed: int = 0) -> None:
        self._port, self._companies, self._rng = port, companies, random.Random(seed)
        self._stock = deque(request_build(port, self._company()) for _ in range(count))
        self.late = 0

    def _company(self) -> dict:
        return self._companies[self._rng.randrange(len(self._companies))]

    def take(self) -> bytes:
        try:
            return self._stock.popleft()
        except IndexError:
            self.late += 1
            return request_build(self._port, self._company())


@dataclass
class RunResult:
    label: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # accepted requests only
    statuses: Counter = field(default_factory=Counter)
    signed_late: int = 0  # requests signed during the measurement (the prebuilt stock ran out)

    @property
    def accepted(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(round(p / 100 * (len(data) - 1))))]

    def line(self) -> str:
        others = {k: v for k, v in self.statuses.items() if k != 201}
        return (
            f"{self.label:<28} {self.rate:8.1f} adv/s  p50 {self.pct(50):6.1f}  p95 {self.pct(95):6.1f}  "
            f"p99 {self.pct(99):6.1f} ms  ({self.accepted} accepted{', other ' + str(others) if others else ''}"
            f"{f', {self.signed_late} signed late' if self.signed_late else ''})"
        )

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "rate": round(self.rate, 1),
            "p50_ms": round(self.pct(50), 1),
            "p95_ms": round(self.pct(95), 1),
            "p99_ms": round(self.pct(99), 1),
            "accepted": self.accepted,
            "statuses": dict(self.statuses),
        }


def closed_loop(
    port: int, companies: list[dict], clients: int, seconds: float, label: str, on_start=None
) -> RunResult:
    """`clients` threads, each sending its next request as soon as the previous one is answered.
    `on_start()` runs once the requests are signed, just before the clock starts."""
    result = RunResult(label=label, seconds=seconds)
    lock = threading.Lock()
    requests = Prebuilt(port, companies, int(seconds * PREBUILT_PER_SECOND))
    if on_start is not None:
        on_start()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        lat, stat = [], Counter()
        while time.monotonic() < stop_at:
            request = requests.take()
            start = time.perf_counter()
            try:
                status, _ = request_send(port, request)
            except OSError:
                status = 599
            if status == 201:
                lat.append((time.perf_counter() - start) * 1000)
            stat[status] += 1
        with lock:
            result.latencies_ms.extend(lat)
            result.statuses.update(stat)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Requests in flight at the end finish late; count the real elapsed time.
    result.seconds = time.monotonic() - started
    result.signed_late = requests.late
    return result


def open_loop(port: int, companies: list[dict], rate: float, seconds: float, label: str) -> RunResult:
    """Requests start on a fixed schedule whatever the answers; latency counts from the scheduled start
    (so a server falling behind shows up as latency, not as a lower offered rate)."""
    result = RunResult(label=label, seconds=seconds)
    lock = threading.Lock()
    interval = 1.0 / rate
    total = int(rate * seconds)
    requests = Prebuilt(port, companies, total, seed=1)

    def one(scheduled: float, request: bytes) -> None:
        try:
            status, _ = request_send(port, request)
        except OSError:
            status = 599
        elapsed = (time.perf_counter() - scheduled) * 1000
        with lock:
            result.statuses[status] += 1
            if status == 201:
                result.latencies_ms.append(elapsed)

    with ThreadPoolExecutor(max_workers=256) as pool:
        base = time.perf_counter()
        for i in range(total):
            scheduled = base + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, scheduled, requests.take())
    result.seconds = max(seconds, time.perf_counter() - base)
    result.signed_late = requests.late
    return result


def find_peak(port: int, companies: list[dict], levels: list[int], seconds: float, printer) -> tuple[RunResult, int]:
    best, best_clients = None, levels[0]
    for n in levels:
        r = closed_loop(port, companies, n, seconds, f"closed loop, {n} clients")
        printer(r.line())
        if best is None or r.rate > best.rate:
            best, best_clients = r, n
    return best, best_clients


# ------------------------------------------------------------------------------------------- baseline

BASELINE_SCHEMA = """
DROP SCHEMA IF EXISTS baseline CASCADE;
CREATE SCHEMA baseline;
CREATE TABLE baseline.line (
    id bigserial PRIMARY KEY, company_id bigint NOT NULL UNIQUE, status text NOT NULL,
    effective_limit numeric(19,2) NOT NULL, reserved numeric(19,2) NOT NULL DEFAULT 0,
    outstanding numeric(19,2) NOT NULL DEFAULT 0, limit_ceiling numeric(19,2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved >= 0 AND outstanding >= 0 AND reserved + outstanding <= limit_ceiling)
);
CREATE TABLE baseline.advance (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE, company_id bigint NOT NULL,
    line_id bigint NOT NULL REFERENCES baseline.line(id), external_id text NOT NULL, status text NOT NULL,
    currency text NOT NULL, amount numeric(19,2) NOT NULL, own_funds_amount numeric(19,2) NOT NULL,
    advanced_amount numeric(19,2) NOT NULL, daily_fee_rate numeric(9,6) NOT NULL, business_date date NOT NULL,
    due_date date NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, external_id)
);
CREATE INDEX ON baseline.advance (company_id, created_at);
CREATE TABLE baseline.payout (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE,
    advance_id bigint NOT NULL REFERENCES baseline.advance(id), sequence int NOT NULL, external_id text NOT NULL,
    beneficiary_name text NOT NULL, account_no text NOT NULL, bank_code text NOT NULL, status text NOT NULL,
    amount numeric(19,2) NOT NULL, own_funds_amount numeric(19,2) NOT NULL, advanced_amount numeric(19,2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (advance_id, sequence), UNIQUE (advance_id, external_id)
);
CREATE INDEX ON baseline.payout (status);
CREATE TABLE baseline.outbox (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE, company_id bigint NOT NULL, type text NOT NULL,
    resource_id text NOT NULL, payload jsonb NOT NULL, status text NOT NULL, next_attempt_at timestamptz NOT NULL
);
CREATE INDEX ON baseline.outbox (status, next_attempt_at);
INSERT INTO baseline.line (company_id, status, effective_limit, limit_ceiling)
SELECT g, 'active', 1e15, 1e15 FROM generate_series(1, 100) g;
"""

# Per advance, the same essential work as the engine: advance row, 3 payout rows, an outbox row, and the
# conditional limit UPDATE last (the engine holds the line last, too), in one transaction.
BASELINE_SCRIPT = """\\set company random(1, {companies})
BEGIN;
INSERT INTO baseline.advance (public_id, company_id, line_id, external_id, status, currency, amount,
    own_funds_amount, advanced_amount, daily_fee_rate, business_date, due_date)
VALUES ('adv_' || md5(random()::text), :company, :company, md5(random()::text), 'reserved', 'CNY', 300.00,
    0, 300.00, 0.0003, current_date, current_date + 1);
INSERT INTO baseline.payout (public_id, advance_id, sequence, external_id, beneficiary_name, account_no,
    bank_code, status, amount, own_funds_amount, advanced_amount)
VALUES ('po_' || md5(random()::text), currval('baseline.advance_id_seq'), 1, 'P1', 'Shanghai Example', '6222020200112233445', 'ICBC', 'pending', 100.00, 0, 100.00);
INSERT INTO baseline.payout (public_id, advance_id, sequence, external_id, beneficiary_name, account_no,
    bank_code, status, amount, own_funds_amount, advanced_amount)
VALUES ('po_' || md5(random()::text), currval('baseline.advance_id_seq'), 2, 'P2', 'Shanghai Example', '6222020200112233445', 'ICBC', 'pending', 100.00, 0, 100.00);
INSERT INTO baseline.payout (public_id, advance_id, sequence, external_id, beneficiary_name, account_no,
    bank_code, status, amount, own_funds_amount, advanced_amount)
VALUES ('po_' || md5(random()::text), currval('baseline.advance_id_seq'), 3, 'P3', 'Shanghai Example', '6222020200112233445', 'ICBC', 'pending', 100.00, 0, 100.00);
INSERT INTO baseline.outbox (public_id, company_id, type, resource_id, payload, status, next_attempt_at)
VALUES ('evt_' || md5(random()::text), :company, 'advance.reserved', 'adv', '{{"type": "advance.reserved", "amount": "300.00"}}', 'pending', now());
UPDATE baseline.line SET reserved = reserved + 300.00, updated_at = now()
 WHERE id = :company AND status = 'active' AND reserved <= effective_limit - outstanding - 300.00;
END;
"""


def pgbench_path() -> str:
    for candidate in (shutil.which("pgbench"), "/usr/lib/postgresql/15/bin/pgbench"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("pgbench not found (apt-get install postgresql-contrib)")


def baseline_run(db_url: str, clients: int, seconds: float, companies: int, label: str) -> RunResult:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(BASELINE_SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "advance.sql"
        script.write_text(BASELINE_SCRIPT.format(companies=companies))
        parsed = urlparse(db_url)
        proc = subprocess.run(
            [
                pgbench_path(), "-n", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 2)),
                "-T", str(int(seconds)), "-f", str(script), "-l", "--log-prefix", str(Path(tmp) / "log"),
                "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432),
                "-U", parsed.username or "postgres", parsed.path.lstrip("/"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})},
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"pgbench failed: {proc.stderr[-2000:]}")
        latencies = []
        for log in Path(tmp).glob("log*"):
            for row in log.read_text().splitlines():
                parts = row.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1000.0)  # microseconds
    match = re.search(r"tps = ([0-9.]+)", proc.stdout)
    tps = float(match.group(1)) if match else len(latencies) / seconds
    result = RunResult(label=label, seconds=seconds, latencies_ms=latencies)
    result.statuses[201] = int(round(tps * seconds))
    return result


# ------------------------------------------------------------------------------------------- CPU


def _process_cpu() -> dict[str, tuple[float, float]]:
    """CPU seconds so far of every process on the machine by role (gunicorn, PostgreSQL, this process), as
    (user + kernel, kernel): on loopback the kernel's TCP work is charged to the processes that send and
    receive."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    total: Counter = Counter()
    kernel: Counter = Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(entry) == me:
            role = "load generator (this process)"
        elif b"gunicorn" in cmdline:
            role = "gunicorn workers"
        elif stat.split("(", 1)[1].startswith("postgres"):
            role = "PostgreSQL"
        elif b"redis" in cmdline:
            role = "Redis (throttle counters)"
        else:
            role = "everything else"
        total[role] += (int(fields[11]) + int(fields[12])) / tick
        kernel[role] += int(fields[12]) / tick
    return {role: (total[role], kernel[role]) for role in total}


def cpu_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (user, system, interrupts; not idle, I/O wait or steal)."""
    busy = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(busy) - busy[3] - busy[4] - busy[7]) / os.sysconf("SC_CLK_TCK")


def cpu_per_advance(port: int, companies: list[dict], clients: int, seconds: float) -> list[str]:
    """A closed-loop run at `clients`, with the CPU each role spent per accepted advance (from /proc)."""
    before: dict[str, tuple[float, float]] = {}
    busy_before: list[float] = []

    def snapshot() -> None:
        before.update(_process_cpu())
        busy_before.append(cpu_busy_seconds())

    result = closed_loop(port, companies, clients, seconds, "cpu", on_start=snapshot)
    after, busy = _process_cpu(), cpu_busy_seconds()
    per_advance = 1000 / max(result.accepted, 1)
    spent = {}  # role -> (ms, of which kernel ms) per accepted advance
    for role, (total, kernel) in after.items():
        total_before, kernel_before = before.get(role, (0.0, 0.0))
        spent[role] = ((total - total_before) * per_advance, (kernel - kernel_before) * per_advance)
    lines = [
        f"  {result.rate:.1f} adv/s at {clients} clients; CPU per accepted advance:",
        f"  {(busy - busy_before[0]) * per_advance:6.2f} ms  (all cores busy, incl. kernel)",
    ]
    for role, (ms, kernel_ms) in sorted(spent.items(), key=lambda item: -item[1][0]):
        if ms >= 0.01:
            lines.append(f"  {ms:6.2f} ms  {role}  ({ms - kernel_ms:.2f} user + {kernel_ms:.2f} kernel)")
    return lines


# ------------------------------------------------------------------------------------------- profile


# Phases of one request (inclusive: a sample counts for every phase whose frame is on its stack).
BUCKETS = [
    ("connection health check (SELECT 1)", ("is_usable (",)),
    ("signature check: key lookup, HMAC", ("funding/api/authentication.py",)),
    ("throttle (Redis)", ("funding/api/throttling.py",)),
    ("input validation (fast path, else DRF serializer)", ("advance_create_fast (", "is_valid (")),
    ("nonce + idempotency claim (one statement)", ("idempotency_claim (",)),
    ("advance_request service", ("advance_request (",)),
    ("  of which the advance_reserve() round trip", ("PreparedCursor.execute (",)),
    ("response representation", ("advance_representation (",)),
    ("idempotency: store the response", ("idempotency_complete (",)),
    ("COMMIT", ("commit (",)),
]


def profile_worker(pid: int, seconds: int, out_path: Path) -> subprocess.Popen | None:
    """py-spy on one gunicorn worker (incl. idle time, so database waits show up); None without py-spy."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(spy):
        return None
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--idle", "--rate", "200",
         "--format", "raw", "--output", str(out_path), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc


def profile_summary(path: Path) -> list[str]:
    """Share of the samples inside a request (under Django's WSGI handler) by phase, plus top self time."""
    if not path.exists():
        return ["(no profile: py-spy not available or not permitted)"]
    total = in_db = 0
    previous = ""
    buckets = Counter()
    selfs = Counter()
    for row in path.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if not count.isdigit() or "django/core/handlers/wsgi.py" not in stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if any("psycopg/" in f for f in frames):
            in_db += n
        matched = set()
        for name, needles in BUCKETS:
            # "  of which ..." counts only samples that are also in the phase above it.
            if name.startswith("  of which") and previous not in matched:
                continue
            if any(needle in f for f in frames for needle in needles):
                buckets[name] += n
                matched.add(name)
            if not name.startswith("  "):
                previous = name
        leaf = frames[-1]
        selfs[re.sub(r" \(.*?([a-z_]+/[a-z_]+\.py):\d+\)", r" (\1)", leaf)] += n
    if not total:
        return ["(profile empty)"]
    lines = [
        f"  {in_db / total * 100:5.1f}%  in psycopg: waiting for PostgreSQL (its CPU share on the same cores)",
        f"  {(total - in_db) / total * 100:5.1f}%  Python in the worker (Django, DRF, ORM SQL compilation, app)",
        "  by phase (inclusive):",
    ]
    lines += [f"  {buckets[name] / total * 100:5.1f}%  {name}" for name, _ in BUCKETS]
    lines.append("  top self time:")
    lines += [f"  {n / total * 100:5.1f}%  {name[:100]}" for name, n in selfs.most_common(6)]
    return lines
