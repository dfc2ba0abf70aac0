"""Payout pipeline throughput: from pending payouts to all succeeded, channels answering at once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/payouts.py [--shapes 4x1000,1000x1] [--workers 2,4] [--floor-clients 1,2,4]

Creates a fresh database (--db, dropped at the end unless --keep-db), migrates it and seeds companies with
active lines through the services (bench/harness.py, as bench/api.py does), then sets every simulated channel
to answer at once (latency 0, no failures, timeouts or late answers). For each shape ADVANCESxPAYOUTS (N
advances of M payouts each, 100.00 each, created through the `advance_request` service):

- in one process: the advances are created with dispatch on commit off, then the pipeline is driven in this
  process through the Celery tasks by name, run eagerly (what the on-commit hook enqueues for each advance,
  `settlement.dispatch_advance`, then the beat sweeps `settlement.dispatch_pending` and
  `settlement.poll_attempts` until every payout is final; every `send_task` the engine makes on the way runs
  inline too). Reported: payouts/s, SQL statements and COMMITs per payout (counted at the psycopg cursor and
  connection, so prepared statements and raw SQL count too; the simulated bank's own statements counted
  apart), CPU per payout of this Python process and of the PostgreSQL backends of the bench database (from
  /proc; PostgreSQL's shared background processes are not counted).
- with real Celery workers (`--workers`, one `celery worker -c N` on the disbursement queue, broker
  CELERY_BROKER_URL): wall time from the first advance request (dispatch on commit on, as in production) until
  every payout of the shape is final, payouts/s, and the CPU per payout of the workers and of the backends;
  for shapes of several advances also "queued": the advances accepted first, then their dispatch tasks
  published (what the on-commit hook sends), timed until all are final: the drain rate without the bench's
  own request loop.

In the same run pgbench (or a psycopg loop without it) runs the minimal per-payout database work of the
engine on tables of the same shape (`payfloor` schema): claim a pending payout with SKIP LOCKED, insert its
attempt, insert a balanced journal transaction and its two entries and update the two accounts' totals,
update the payout to succeeded, insert the webhook event; one transaction per payout. The engine's figure is
printed as a percentage of the floor at the same concurrency (one process = 1 client, N workers = N clients);
the floor runs before and after the engine's runs (the machine's speed drifts) and the better figure counts.
--sql prints the statements of driving one 2-payout advance.

The bench uses only public entry points (the `advance_request` service, task names, the models' tables for
counting), so it keeps working when dispatch changes inside. --json PATH writes the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
from api import machine  # noqa: E402

PAYOUT_AMOUNT = Decimal("100.00")
INSTANT = {"latency_ms": 0, "failure_rate": 0.0, "timeout_rate": 0.0, "late_success_rate": 0.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="4x1000,1000x1", help="ADVANCESxPAYOUTS, comma separated")
    p.add_argument("--workers", default="2,4", help="Celery worker processes per run ('' = no Celery runs)")
    p.add_argument("--floor-clients", default="1,2,4", help="pgbench clients of the floor ('' = no floor)")
    p.add_argument("--floor-seconds", type=float, default=5)
    p.add_argument("--companies", type=int, default=10)
    p.add_argument("--timeout", type=float, default=1800, help="give up on a run after this many seconds")
    p.add_argument("--db", default="bench_payouts", help="name of the database to (re)create")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--broker",
        default=os.environ.get("BENCH_REDIS_URL")
        or os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        help="the Celery broker of the worker runs (Redis)",
    )
    p.add_argument("--dispatch-task", default="settlement.dispatch_advance",
                   help="the task the on-commit hook enqueues per advance (argument: the advance id)")
    p.add_argument("--sweep-tasks", default="settlement.dispatch_pending,settlement.poll_attempts",
                   help="the beat tasks that finish what is left")
    p.add_argument("--sql", action="store_true", help="print the SQL of driving one advance of 2 payouts")
    p.add_argument("--sql-times", type=int, default=0, metavar="N",
                   help="after each one-process run, the N statements that took the most wall time")
    p.add_argument("--batch-file", action="store_true",
                   help="the simulated channels take batch files (批量代付: one request per batch) instead of"
                        " one request per payout")
    p.add_argument("--max-in-flight", type=int, default=1, metavar="N",
                   help="requests each real-time channel takes at once (adapter setting max_in_flight; 1: one"
                        " after the other)")
    p.add_argument("--latency-ms", type=float, default=0,
                   help="each channel request's round trip (0: the channels answer at once)")
    p.add_argument("--json", help="write the figures to this file")
    return p.parse_args(argv)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not match:
            raise SystemExit(f"bad shape {part!r}: want ADVANCESxPAYOUTS, e.g. 4x1000")
        shapes.append((int(match.group(1)), int(match.group(2))))
    return shapes


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# --------------------------------------------------------------------------------------------- counting


class SqlCounter:
    """Statements and COMMITs sent by psycopg in this process (every cursor: Django's, prepared, raw).

    Statements run inside a channel adapter's call (the simulated bank keeps its side in the database) are
    counted apart: they are the channel's cost, not the engine's.
    """

    def __init__(self) -> None:
        self.on = False
        self.ignore: set[int] = set()  # id() of connections not to count (the bench's own monitor)
        self.statements = 0
        self.channel_statements = 0
        self.commits = 0
        self.channel_commits = 0
        self.channel_depth = 0
        self.channel_cpu = 0.0
        self.channel_wall = 0.0
        self.channel_calls = Counter()
        self.capture: list[str] | None = None  # the statements' text, when set
        self.times: dict[str, list[float]] | None = None  # statement -> [count, seconds], when set
        # Rows every batch and the API share (ledger accounts, credit lines): how long each transaction holds
        # them, from the statement that first locks or updates one to the end of its COMMIT.
        self.holding: dict[int, tuple[str, float]] = {}  # id(conn) -> (what, since)
        self.holds: dict[str, list[float]] = {}

    def reset(self) -> None:
        self.holding, self.holds = {}, {}
        self.statements = self.channel_statements = self.commits = self.channel_commits = 0
        self.channel_cpu = self.channel_wall = 0.0
        self.channel_calls = Counter()
        if self.times is not None:
            self.times = {}

    def add(self, conn, n: int, query=None) -> None:
        if not self.on or id(conn) in self.ignore:
            return
        if self.capture is not None:
            text = query.decode() if isinstance(query, bytes) else str(query)
            self.capture.append(("  [channel] " if self.channel_depth else "") + " ".join(text.split()))
        if self.channel_depth:
            self.channel_statements += n
        else:
            self.statements += n

    SHARED = (("accounts", re.compile(r"FROM ledger_account .*FOR (NO KEY )?UPDATE")),
              ("credit lines", re.compile(r'UPDATE "funding_creditline"|FROM "funding_creditline" .*FOR (NO KEY )?UPDATE')))

    def note_lock(self, cursor, query, since: float) -> None:
        """A statement that locked or updated shared rows (a lock that found none holds nothing) starts a hold."""
        conn = cursor.connection
        if id(conn) in self.holding or self.channel_depth or not cursor.rowcount or cursor.rowcount < 0:
            return
        text = query.decode() if isinstance(query, bytes) else str(query)
        for what, pattern in self.SHARED:
            if pattern.search(" ".join(text.split())):
                self.holding[id(conn)] = (what, since)
                return

    def note_end(self, conn) -> None:
        held = self.holding.pop(id(conn), None)
        if held is not None:
            self.holds.setdefault(held[0], []).append(time.perf_counter() - held[1])

    def time(self, query, seconds: float) -> None:
        text = query.decode() if isinstance(query, bytes) else str(query)
        key = ("[channel] " if self.channel_depth else "") + " ".join(text.split())[:150]
        entry = self.times.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def install(self) -> None:
        import psycopg

        counter = self
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
        commit, rollback = psycopg.Connection.commit, psycopg.Connection.rollback

        @functools.wraps(execute)
        def counted_execute(cursor, query, params=None, *args, **kwargs):
            counter.add(cursor.connection, 1, query)
            if not counter.on:
                return execute(cursor, query, params, *args, **kwargs)
            started = time.perf_counter()
            try:
                return execute(cursor, query, params, *args, **kwargs)
            finally:
                if counter.times is not None:
                    counter.time(query, time.perf_counter() - started)
                counter.note_lock(cursor, query, started)

        @functools.wraps(executemany)
        def counted_executemany(cursor, query, params_seq, *args, **kwargs):
            params_seq = list(params_seq)
            counter.add(cursor.connection, len(params_seq), query)
            return executemany(cursor, query, params_seq, *args, **kwargs)

        @functools.wraps(commit)
        def counted_commit(conn):
            try:
                return counted(conn)
            finally:
                counter.note_end(conn)

        @functools.wraps(rollback)
        def counted_rollback(conn):
            try:
                return rollback(conn)
            finally:
                counter.holding.pop(id(conn), None)

        def counted(conn):
            if counter.on and id(conn) not in counter.ignore:
                if counter.capture is not None:
                    counter.capture.append("COMMIT")
                if counter.channel_depth:
                    counter.channel_commits += 1
                else:
                    counter.commits += 1
                if counter.times is not None:
                    started = time.perf_counter()
                    try:
                        return commit(conn)
                    finally:
                        counter.time("COMMIT (deferred checks, WAL flush)", time.perf_counter() - started)
            return commit(conn)

        psycopg.Cursor.execute = counted_execute
        psycopg.Cursor.executemany = counted_executemany
        psycopg.Connection.commit = counted_commit
        psycopg.Connection.rollback = counted_rollback

    def wrap_channel_adapters(self) -> list[str]:
        """Mark the simulated adapter's public methods (submit, query, statement, any batch variant)."""
        try:
            from settlement.adapters import simulated
        except ImportError:
            return []
        counter = self
        wrapped = []
        for cls in vars(simulated).values():
            if not (isinstance(cls, type) and cls.__module__ == simulated.__name__ and hasattr(cls, "submit")):
                continue
            for name, method in list(vars(cls).items()):
                if name.startswith("_") or not callable(method):
                    continue

                def make(method=method, name=name):
                    @functools.wraps(method)
                    def inside_channel(*args, **kwargs):
                        if threading.current_thread() is not threading.main_thread():
                            # A channel thread (max_in_flight > 1): the main thread's batch call around it
                            # counts its statements, CPU (process-wide) and wall time as the channel's.
                            counter.channel_calls[name] += 1
                            return method(*args, **kwargs)
                        counter.channel_depth += 1
                        cpu, wall = time.process_time(), time.perf_counter()
                        try:
                            return method(*args, **kwargs)
                        finally:
                            counter.channel_depth -= 1
                            if not counter.channel_depth:
                                counter.channel_cpu += time.process_time() - cpu
                                counter.channel_wall += time.perf_counter() - wall
                            counter.channel_calls[name] += 1

                    return inside_channel

                setattr(cls, name, make())
                wrapped.append(f"{cls.__name__}.{name}")
        return wrapped


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process on this machine, from /proc; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (Celery's prefork pool)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Monitor:
    """The bench's own connection: counts final payouts and lists the bench database's backends."""

    def __init__(self, db_url: str):
        import psycopg

        self.conn = psycopg.connect(db_url, autocommit=True)
        from funding.models import FINAL_PAYOUT_STATES, Payout

        table = Payout._meta.db_table
        advance_col = Payout._meta.get_field("advance").column
        status_col = Payout._meta.get_field("status").column
        self.finals = [str(s) for s in FINAL_PAYOUT_STATES]
        self.count_sql = (
            f'SELECT count(*) FILTER (WHERE "{status_col}" = ANY(%s)), '
            f'count(*) FILTER (WHERE "{status_col}" = %s), count(*) '
            f'FROM "{table}" WHERE "{advance_col}" >= %s'
        )

    def progress(self, first_advance_id: int) -> tuple[int, int, int]:
        """(final, succeeded, all) payouts of advances with id >= first_advance_id."""
        row = self.conn.execute(self.count_sql, [self.finals, "succeeded", first_advance_id]).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def backends_cpu(self) -> dict[int, float]:
        pids = [
            r[0]
            for r in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            ).fetchall()
        ]
        return {pid: proc_cpu(pid) for pid in pids}

    @staticmethod
    def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    shape: str
    mode: str
    payouts: int
    seconds: float
    succeeded: int
    final: int
    concurrency: int
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.final / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "shape": self.shape, "mode": self.mode, "payouts": self.payouts, "seconds": round(self.seconds, 2),
            "payouts_per_s": round(self.rate, 1), "succeeded": self.succeeded, "final": self.final,
            "concurrency": self.concurrency, **self.extra,
        }


# ----------------------------------------------------------------------------------------------- engine


class Engine:
    """This process as an engine process: Django set up on the bench database."""

    def __init__(self, args: argparse.Namespace, db_url: str, env: dict[str, str], companies: list[dict]):
        self.args = args
        self.db_url = db_url
        self.env = env
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        self.counter = SqlCounter()
        self.counter.install()
        import django

        django.setup()
        from celery import current_app

        from funding.models import Company

        self.app = current_app._get_current_object()
        self.app.loader.import_default_modules()
        self.companies = [Company.objects.get(code=c["code"]) for c in companies]
        self.wrapped = self.counter.wrap_channel_adapters()
        self.monitor = Monitor(db_url)
        self.counter.ignore.add(id(self.monitor.conn))
        self.instant_channels()
        self.sequence = 0

    def instant_channels(self) -> None:
        """Every channel answers at once and always pays (bench set-up, written directly)."""
        from settlement.models import Channel

        instant = {**INSTANT, "batch_file": bool(self.args.batch_file), "max_in_flight": self.args.max_in_flight,
                   "latency_ms": self.args.latency_ms}
        for channel in Channel.objects.all():
            channel.adapter_settings = {**(channel.adapter_settings or {}), **instant}
            channel.save(update_fields=["adapter_settings"])

    # -- advances

    def request_advances(self, advances: int, payouts: int) -> tuple[list[int], float]:
        """`advances` advances of `payouts` payouts through the service; (ids, seconds)."""
        from funding.services.advances import PayoutInput, advance_request

        ids = []
        started = time.perf_counter()
        for i in range(advances):
            self.sequence += 1
            tag = f"{os.getpid()}-{self.sequence}"
            advance = advance_request(
                company=self.companies[i % len(self.companies)],
                external_id=f"B{tag}",
                amount=PAYOUT_AMOUNT * payouts,
                payouts=[
                    PayoutInput(
                        external_id=f"P{tag}-{n}",
                        beneficiary_name="Shanghai Example Trading Co.",
                        account_no="6222020200112233445",
                        bank_code="ICBC",
                        amount=PAYOUT_AMOUNT,
                    )
                    for n in range(payouts)
                ],
            )
            ids.append(advance.pk)
        return ids, time.perf_counter() - started

    # -- one process

    def task(self, name: str):
        return self.app.tasks.get(name)

    def eager(self):
        """Every task the engine sends by name runs inline, in this process."""
        app = self.app
        original = app.send_task

        def send_task(name, args=None, kwargs=None, **options):
            return app.tasks[name].apply(args=args or (), kwargs=kwargs or {})

        class Eager:
            def __enter__(self_):
                app.conf.task_always_eager = True
                app.conf.task_eager_propagates = True
                app.send_task = send_task

            def __exit__(self_, *exc):
                app.conf.task_always_eager = False
                app.send_task = original

        return Eager()

    def drive(self, ids: list[int], deadline: float) -> tuple[int, int, int]:
        dispatch = self.task(self.args.dispatch_task)
        sweeps = [t for t in (self.task(n) for n in self.args.sweep_tasks.split(",") if n) if t is not None]
        if dispatch is not None:
            for advance_id in ids:
                dispatch.apply(args=[advance_id])
        final, succeeded, total = self.monitor.progress(ids[0])
        while final < total and time.monotonic() < deadline:
            for sweep in sweeps:
                sweep.apply()
            final, succeeded, total = self.monitor.progress(ids[0])
            if final < total:
                time.sleep(0.2)  # e.g. waiting for a status query to fall due
        return final, succeeded, total

    def run_in_process(self, advances: int, payouts: int, warm: bool = False) -> Result | None:
        from django.conf import settings
        from django.db import connection

        settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
        ids, request_s = self.request_advances(advances, payouts)
        connection.ensure_connection()
        counter = self.counter
        counter.reset()
        backends0 = self.monitor.backends_cpu()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        counter.on = True
        try:
            with self.eager():
                final, succeeded, total = self.drive(ids, time.monotonic() + self.args.timeout)
        finally:
            counter.on = False
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pg = self.monitor.cpu_delta(backends0, self.monitor.backends_cpu())
        if warm:
            return None
        n = max(final, 1)
        engine_s = wall - counter.channel_wall
        return Result(
            shape=f"{advances}x{payouts}", mode="one process", payouts=total, seconds=wall, succeeded=succeeded,
            final=final, concurrency=1,
            extra={
                "requests_s": round(request_s, 2),
                # Engine capacity: the wall time outside the channel's calls (the simulated bank runs in this
                # process and keeps its side in the database; a real bank's time is not the engine's).
                "channel_wall_s": round(counter.channel_wall, 2),
                "engine_payouts_per_s": round(final / engine_s, 1) if engine_s > 0 else None,
                "statements_per_payout": round(counter.statements / n, 2),
                "commits_per_payout": round(counter.commits / n, 2),
                "channel_statements_per_payout": round(counter.channel_statements / n, 2),
                "channel_commits_per_payout": round(counter.channel_commits / n, 2),
                "python_cpu_ms": round((cpu - counter.channel_cpu) / n * 1000, 2),
                "channel_cpu_ms": round(counter.channel_cpu / n * 1000, 2),
                "postgres_cpu_ms": round(pg / n * 1000, 2),
                "channel_calls": dict(counter.channel_calls),
                "held_ms": {what: [round(sum(t) / len(t) * 1000, 1), round(max(t) * 1000, 1), len(t)]
                            for what, t in counter.holds.items()},
            },
        )

    # -- Celery workers

    def start_workers(self, processes: int) -> subprocess.Popen:
        queue = f"{self.env.get('CELERY_QUEUE_PREFIX', '')}disbursement"
        log = open(h.ROOT / "var" / f"{self.args.db}-celery-{processes}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-c", str(processes),
                "-n", f"paybench-{processes}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING",
            ],
            cwd=h.ROOT,
            env={**self.env, "DISBURSEMENT_DISPATCH_ON_COMMIT": "true", "DJANGO_SETTINGS_MODULE": "config.settings"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @staticmethod
    def stop_workers(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def wait_final(
        self, first_id: int, deadline: float, worker: subprocess.Popen, seen: dict[int, float] | None = None
    ) -> tuple[int, int, int]:
        """Poll until every payout of advances >= first_id is final. `seen`: the highest CPU seen per backend
        (Celery's Django fix-up closes the connection around every task, so backends come and go)."""
        sweeps = [n for n in self.args.sweep_tasks.split(",") if n]
        next_sweep = time.monotonic() + 10  # beat's poll_attempts runs every 10 s (config/settings.py)
        while True:
            if seen is not None:
                for pid, cpu in self.monitor.backends_cpu().items():
                    seen[pid] = max(cpu, seen.get(pid, 0.0))
            final, succeeded, total = self.monitor.progress(first_id)
            if final >= total or time.monotonic() > deadline:
                return final, succeeded, total
            if worker.poll() is not None:
                raise SystemExit(f"the Celery worker exited with {worker.returncode}; see var/{self.args.db}-celery-*.log")
            if time.monotonic() > next_sweep:  # stand in for beat, at its pace, if anything is left behind
                for name in sweeps:
                    self.app.send_task(name)
                next_sweep = time.monotonic() + 10
            time.sleep(0.02)

    def run_celery(self, processes: int, shapes: list[tuple[int, int]]) -> list[Result]:
        from django.conf import settings

        settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
        self.app.control.purge()
        worker = self.start_workers(processes)
        results = []
        try:
            # Warm-up: the pool's processes start, import, connect (one advance per process).
            ids, _ = self.request_advances(processes * 2, 2)
            final, _, total = self.wait_final(ids[0], time.monotonic() + 120, worker)
            if final < total:
                raise SystemExit(f"Celery warm-up did not finish ({final}/{total}); see var/{self.args.db}-celery-*.log")
            for advances, payouts in shapes:
                time.sleep(0.5)
                tree0 = {pid: proc_cpu(pid) for pid in tree_pids(worker.pid)}
                backends0 = self.monitor.backends_cpu()
                started = time.perf_counter()
                seen = dict(backends0)
                ids, request_s = self.request_advances(advances, payouts)
                final, succeeded, total = self.wait_final(
                    ids[0], time.monotonic() + self.args.timeout, worker, seen
                )
                wall = time.perf_counter() - started
                tree1 = {pid: proc_cpu(pid) for pid in tree_pids(worker.pid)}
                pg = self.monitor.cpu_delta(backends0, seen)
                connections = len(set(seen) - set(backends0))
                workers_cpu = sum(cpu - tree0.get(pid, 0.0) for pid, cpu in tree1.items())
                n = max(final, 1)
                r = Result(
                    shape=f"{advances}x{payouts}", mode=f"Celery, {processes} processes", payouts=total,
                    seconds=wall, succeeded=succeeded, final=final, concurrency=processes,
                    extra={
                        "requests_s": round(request_s, 2),
                        "workers_cpu_ms": round(workers_cpu / n * 1000, 2),
                        # A lower bound: sampled every ~20 ms, and a backend that lived between two samples
                        # is not seen at all.
                        "postgres_cpu_ms": round(pg / n * 1000, 2),
                        "postgres_cpu_sampled": True,
                        "new_connections_seen": connections,
                    },
                )
                print(line(r), flush=True)
                results.append(r)
                if advances > 1:
                    results.append(self.run_celery_queued(processes, advances, payouts, worker))
        finally:
            self.stop_workers(worker)
            settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
        return results

    def run_celery_queued(self, processes: int, advances: int, payouts: int, worker) -> Result:
        """Many advances already accepted (created with dispatch on commit off, outside the clock), then their
        dispatch tasks published as the on-commit hook would (`settlement.dispatch_batch`, one per advance):
        the workers' drain rate, without the bench's own request loop inside the wall time."""
        from django.conf import settings

        settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
        try:
            ids, request_s = self.request_advances(advances, payouts)
        finally:
            settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
        time.sleep(0.5)
        tree0 = {pid: proc_cpu(pid) for pid in tree_pids(worker.pid)}
        backends0 = self.monitor.backends_cpu()
        seen = dict(backends0)
        started = time.perf_counter()
        for advance_id in ids:
            self.app.send_task("settlement.dispatch_batch", args=[advance_id], retry=False)
        final, succeeded, total = self.wait_final(ids[0], time.monotonic() + self.args.timeout, worker, seen)
        wall = time.perf_counter() - started
        tree1 = {pid: proc_cpu(pid) for pid in tree_pids(worker.pid)}
        n = max(final, 1)
        r = Result(
            shape=f"{advances}x{payouts}", mode=f"Celery, {processes} processes, queued", payouts=total,
            seconds=wall, succeeded=succeeded, final=final, concurrency=processes,
            extra={
                "requests_s": round(request_s, 2),
                "workers_cpu_ms": round(sum(cpu - tree0.get(pid, 0.0) for pid, cpu in tree1.items()) / n * 1000, 2),
                "postgres_cpu_ms": round(self.monitor.cpu_delta(backends0, seen) / n * 1000, 2),
                "postgres_cpu_sampled": True,
                "new_connections_seen": len(set(seen) - set(backends0)),
            },
        )
        print(line(r), flush=True)
        return r

    def close(self) -> None:
        from django.db import connections

        self.monitor.close()
        connections.close_all()


# ------------------------------------------------------------------------------------------------ floor

FLOOR_SCHEMA = """
DROP SCHEMA IF EXISTS payfloor CASCADE;
CREATE SCHEMA payfloor;
CREATE TABLE payfloor.account (
    id bigint PRIMARY KEY, code text NOT NULL UNIQUE,
    debits_posted numeric(19,2) NOT NULL DEFAULT 0, credits_posted numeric(19,2) NOT NULL DEFAULT 0,
    CHECK (debits_posted >= 0 AND credits_posted >= 0)
);
CREATE TABLE payfloor.payout (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE, advance_id bigint NOT NULL, company_id bigint NOT NULL,
    sequence int NOT NULL, status text NOT NULL, amount numeric(19,2) NOT NULL, attempt_count int NOT NULL DEFAULT 0,
    funds_out boolean NOT NULL DEFAULT false, value_date date, version int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(), UNIQUE (advance_id, sequence)
);
CREATE INDEX ON payfloor.payout (status, id);
CREATE TABLE payfloor.attempt (
    id bigserial PRIMARY KEY, payout_id bigint NOT NULL REFERENCES payfloor.payout(id), number int NOT NULL,
    serial text NOT NULL UNIQUE, channel text NOT NULL, amount numeric(19,2) NOT NULL, fee numeric(19,2) NOT NULL,
    status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ON payfloor.attempt (payout_id) WHERE status IN ('processing', 'unknown');
CREATE TABLE payfloor.journal (
    id bigserial PRIMARY KEY, kind text NOT NULL, reference text NOT NULL UNIQUE, business_date date NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE payfloor.entry (
    id bigserial PRIMARY KEY, journal_id bigint NOT NULL REFERENCES payfloor.journal(id),
    account_id bigint NOT NULL REFERENCES payfloor.account(id), direction char(1) NOT NULL,
    amount numeric(19,2) NOT NULL CHECK (amount > 0)
);
CREATE INDEX ON payfloor.entry (account_id, journal_id);
CREATE TABLE payfloor.event (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE, company_id bigint NOT NULL, type text NOT NULL,
    resource_id text NOT NULL, payload jsonb NOT NULL, status text NOT NULL, next_attempt_at timestamptz NOT NULL
);
CREATE INDEX ON payfloor.event (status, next_attempt_at);
-- accounts 1..N: each company's advance receivable; 0: the channel's clearing account (one hot row, as in
-- the engine, where every payout of a channel moves its in-transit and clearing accounts).
INSERT INTO payfloor.account (id, code) SELECT g, 'receivable:' || g FROM generate_series(1, {companies}) g;
INSERT INTO payfloor.account (id, code) VALUES (0, 'clearing:IBPS');
"""

FLOOR_FILL = """
TRUNCATE payfloor.event, payfloor.entry, payfloor.journal, payfloor.attempt, payfloor.payout;
INSERT INTO payfloor.payout (public_id, advance_id, company_id, sequence, status, amount)
SELECT 'po_' || g, g / 1000, (g / 1000) % {companies} + 1, g % 1000, 'pending', 100.00
  FROM generate_series(1, {rows}) g;
VACUUM ANALYZE payfloor.payout;
"""

# One payout, one transaction: the engine's per-payout work in its minimal form.
FLOOR_STEPS = [
    "SELECT id AS pid, company_id AS company FROM payfloor.payout WHERE status = 'pending'"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    "INSERT INTO payfloor.attempt (payout_id, number, serial, channel, amount, fee, status)"
    " VALUES (:pid, 1, 'po_' || :pid || '-1', 'IBPS', 100.00, 1.00, 'succeeded')",
    "WITH j AS (INSERT INTO payfloor.journal (kind, reference, business_date)"
    " VALUES ('payout.paid', 'po_' || :pid || '-1:paid', current_date) RETURNING id)"
    " INSERT INTO payfloor.entry (journal_id, account_id, direction, amount)"
    " SELECT j.id, v.account, v.direction, 100.00 FROM j, (VALUES (:company::bigint, 'D'), (0::bigint, 'C')) v(account, direction)",
    "UPDATE payfloor.account SET debits_posted = debits_posted + CASE WHEN id = 0 THEN 0 ELSE 100.00 END,"
    " credits_posted = credits_posted + CASE WHEN id = 0 THEN 100.00 ELSE 0 END WHERE id IN (:company, 0)",
    "UPDATE payfloor.payout SET status = 'succeeded', attempt_count = 1, funds_out = true,"
    " value_date = current_date, version = version + 1, updated_at = now() WHERE id = :pid",
    "INSERT INTO payfloor.event (public_id, company_id, type, resource_id, payload, status, next_attempt_at)"
    " VALUES ('evt_' || md5(random()::text), :company, 'payout.succeeded', 'po_' || :pid,"
    " jsonb_build_object('type', 'payout.succeeded', 'id', 'po_' || :pid, 'amount', '100.00'), 'pending', now())",
]


def floor_script() -> str:
    claim, *rest = FLOOR_STEPS
    return "BEGIN;\n" + claim + " \\gset\n" + "".join(step + ";\n" for step in rest) + "END;\n"


def pgbench_or_none() -> str | None:
    try:
        return h.pgbench_path()
    except SystemExit:
        return None


def floor_run(db_url: str, clients: int, seconds: float, companies: int) -> dict:
    import psycopg

    rows = int(max(20000, 6000 * clients * seconds))
    with psycopg.connect(db_url, autocommit=True) as conn:
        for statement in FLOOR_FILL.format(rows=rows, companies=companies).split(";\n"):
            if statement.strip():
                conn.execute(statement)
    pgbench = pgbench_or_none()
    if pgbench is None:
        return floor_psycopg(db_url, clients, seconds) | {"tool": "psycopg loop"}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "payout.sql"
        script.write_text(floor_script())
        parsed = urlparse(db_url)
        proc = subprocess.run(
            [
                pgbench, "-n", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 2)),
                "-T", str(max(1, int(seconds))), "-f", str(script),
                "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432),
                "-U", parsed.username or "postgres", parsed.path.lstrip("/"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})},
            check=False,
        )
    if proc.returncode != 0 or "aborted" in proc.stdout + proc.stderr:
        raise SystemExit(f"pgbench failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    tps = float(re.search(r"tps = ([0-9.]+)", proc.stdout).group(1))
    latency = re.search(r"latency average = ([0-9.]+) ms", proc.stdout)
    with psycopg.connect(db_url, autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FROM payfloor.payout WHERE status = 'succeeded'").fetchone()[0]
        balanced = conn.execute(
            "SELECT sum(CASE direction WHEN 'D' THEN amount ELSE -amount END) FROM payfloor.entry"
        ).fetchone()[0]
    return {
        "tool": "pgbench", "clients": clients, "payouts_per_s": round(tps, 1), "payouts": done,
        "latency_ms": float(latency.group(1)) if latency else None, "balance": str(balanced),
    }


def floor_steps_psycopg() -> list[str]:
    """FLOOR_STEPS with pgbench's :variables as psycopg's named parameters."""
    return [re.sub(r":(pid|company)\b", r"%(\1)s", step.replace("%", "%%")) for step in FLOOR_STEPS]


def floor_psycopg(db_url: str, clients: int, seconds: float) -> dict:
    """The same steps from psycopg threads (when pgbench is missing); the client costs more than pgbench's."""
    import psycopg

    steps = floor_steps_psycopg()
    done = Counter()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        with psycopg.connect(db_url) as conn:
            while time.monotonic() < stop_at:
                with conn.transaction():
                    row = conn.execute(steps[0]).fetchone()
                    params = {"pid": row[0], "company": row[1]}
                    for step in steps[1:]:
                        conn.execute(step, params)
                done[n] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"clients": clients, "payouts_per_s": round(sum(done.values()) / elapsed, 1), "payouts": sum(done.values())}


# ------------------------------------------------------------------------------------------------ report


def line(r: Result) -> str:
    x = r.extra
    cpu = (
        f"python {x['python_cpu_ms']:.2f} + channel {x['channel_cpu_ms']:.2f} ms, postgres {x['postgres_cpu_ms']:.2f} ms"
        if "python_cpu_ms" in x
        else f"workers {x['workers_cpu_ms']:.2f} ms, postgres >= {x['postgres_cpu_ms']:.2f} ms (sampled);"
        f" {x['new_connections_seen']} new database connections seen"
    )
    sql = (
        f", {x['statements_per_payout']:.1f} stmts (+{x['channel_statements_per_payout']:.1f} channel) "
        f"{x['commits_per_payout']:.2f} commits"
        if "statements_per_payout" in x
        else ""
    )
    bad = f"  ({r.payouts - r.final} NOT FINAL)" if r.final < r.payouts else ""
    engine = (
        f" (engine alone {x['engine_payouts_per_s']:.1f}/s: {r.seconds - x['channel_wall_s']:.2f} s outside the"
        f" channel's calls)"
        if x.get("engine_payouts_per_s")
        else ""
    )
    held = "".join(
        f"\n{'':12}{what} held per transaction (lock to end of COMMIT): mean {mean} ms, max {top} ms ({n} transactions)"
        for what, (mean, top, n) in sorted(x.get("held_ms", {}).items())
    )
    return (
        f"{r.shape:>9} {r.mode:<22} {r.final:6d} payouts in {r.seconds:7.2f} s = {r.rate:8.1f} payouts/s{engine}"
        f"{sql}; CPU per payout: {cpu}{bad}{held}"
    )


def table(results: list[Result], floor: dict[int, dict]) -> str:
    head = (
        "| shape | mode | payouts | wall s | payouts/s | floor at same concurrency | % of floor | % of best floor"
        " | SQL stmts / payout"
        " | COMMITs / payout | CPU ms / payout: Python (this process / workers) | PostgreSQL backends"
        " | engine alone (outside the channel's calls), payouts/s |"
    )
    rows = [head, "|" + "---|" * 13]
    best = max((f["payouts_per_s"] for f in floor.values()), default=0)
    for r in results:
        x = r.extra
        base = floor.get(r.concurrency)
        pct = f"{r.rate / base['payouts_per_s']:.1%}" if base and base["payouts_per_s"] else "-"
        python = x.get("python_cpu_ms", x.get("workers_cpu_ms"))
        pg = f">= {x['postgres_cpu_ms']} (sampled)" if x.get("postgres_cpu_sampled") else x["postgres_cpu_ms"]
        stmts = (
            f"{x['statements_per_payout']:.1f} (+{x['channel_statements_per_payout']:.1f} simulated bank)"
            if "statements_per_payout" in x
            else "-"
        )
        rows.append(
            f"| {r.shape} | {r.mode} | {r.final}/{r.payouts} | {r.seconds:.2f} | {r.rate:.1f} | "
            f"{base['payouts_per_s'] if base else '-'} ({r.concurrency} client{'s' if r.concurrency > 1 else ''}) | "
            f"{pct} | {f'{r.rate / best:.1%}' if best else '-'} | {stmts} | {x.get('commits_per_payout', '-')} | {python} | {pg}"
            f" | {x.get('engine_payouts_per_s') or '-'} |"
        )
    return "\n".join(rows)


def run_floor(args: argparse.Namespace, db_url: str, floor: dict[int, dict], when: str) -> None:
    import psycopg

    print(f"\n-- raw-SQL floor, {when}: the same per-payout database work, one transaction per payout", flush=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FLOOR_SCHEMA.format(companies=args.companies))
    for clients in ints(args.floor_clients):
        f = floor_run(db_url, clients, args.floor_seconds, args.companies) | {"when": when}
        print(f"floor {f['tool']:<8} {clients} client(s): {f['payouts_per_s']:8.1f} payouts/s "
              f"({f['payouts']} payouts, journal balance {f.get('balance', '?')})", flush=True)
        runs = floor.setdefault(clients, {"runs": []})["runs"]
        runs.append(f)
        floor[clients].update(max(runs, key=lambda x: x["payouts_per_s"]) | {"runs": runs})


def uptime() -> str:
    """`uptime` in UTC (Django sets TZ to the engine's time zone in this process)."""
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False, env=env).stdout.strip()


def main(argv=None) -> dict:
    args = parse_args(argv)
    shapes = parse_shapes(args.shapes)
    info = machine()
    info["uptime"] = uptime()
    print(f"machine: {info}", flush=True)
    print(f"creating database {args.db} ...", flush=True)
    db_url = h.database_recreate(args.db)
    env = h.engine_env(
        db_url,
        args.broker,
        DISBURSEMENT_DISPATCH_ON_COMMIT="false",  # on in the worker runs (set in-process and for the workers)
        CELERY_QUEUE_PREFIX=f"{args.db}.",  # queues of their own on a shared broker
    )
    specs = [{"code": f"PAYB-{i:03d}", "limit": "1000000000000.00"} for i in range(args.companies)]
    started = time.monotonic()
    companies = h.engine_prepare(env, specs)
    print(f"migrated and seeded {len(companies)} companies in {time.monotonic() - started:.1f}s", flush=True)
    (h.ROOT / "var").mkdir(exist_ok=True)
    engine = Engine(args, db_url, env, companies)
    answer = "at once" if not args.latency_ms else f"after {args.latency_ms:g} ms"
    print(f"channels answer {answer}, each takes {args.max_in_flight} request(s) at once"
          f" ({'batch files' if args.batch_file else 'real-time'}); counted as the channel's:"
          f" {', '.join(engine.wrapped) or 'nothing'}")
    figures: dict = {"machine": info, "command": " ".join(sys.argv), "results": [], "floor": []}
    results: list[Result] = []
    floor: dict[int, dict] = {}
    try:
        if args.floor_clients:
            # Before and after the engine's runs: the shared machine's speed drifts; the ratios use the
            # better of the two at each concurrency.
            run_floor(args, db_url, floor, "before the engine's runs")
        print("\n-- one process (tasks run eagerly in this process)", flush=True)
        engine.run_in_process(2, 20, warm=True)  # imports, connection, routing caches
        if args.sql_times:
            engine.counter.times = {}
        for advances, payouts in shapes:
            r = engine.run_in_process(advances, payouts)
            print(line(r), flush=True)
            results.append(r)
            if args.sql_times:
                top = sorted(engine.counter.times.items(), key=lambda kv: -kv[1][1])[: args.sql_times]
                total = sum(seconds for _, seconds in engine.counter.times.values())
                print(f"    {total * 1000:8.1f} ms in all statements and COMMITs of the run ({r.seconds * 1000:.1f} ms wall)")
                for text, (count, seconds) in top:
                    print(f"    {seconds * 1000:8.1f} ms {count:6d}x {seconds / count * 1e6:8.0f} us  {text}")
        engine.counter.times = None
        if args.sql:
            engine.counter.capture = statements = []
            engine.run_in_process(1, 2, warm=True)
            engine.counter.capture = None
            print(f"\n-- SQL of one advance of 2 payouts, in one process ({len(statements)} lines)")
            for text in statements:
                print("  " + text[:200])
        for processes in ints(args.workers):
            print(f"\n-- Celery: one worker, {processes} processes, broker {args.broker}", flush=True)
            results.extend(engine.run_celery(processes, shapes))
        if args.floor_clients:
            run_floor(args, db_url, floor, "after the engine's runs")
    finally:
        engine.close()
        if not args.keep_db:
            h.database_drop(args.db)
    print("\n" + table(results, floor))
    print("\n(one process: the floor at 1 client; N Celery processes: the floor at N clients; the better of the"
          " floor's runs before and after the engine's)")
    info["uptime_at_end"] = uptime()
    print(f"uptime at start: {info['uptime']}\nuptime at end:   {info['uptime_at_end']}")
    figures["results"] = [r.as_dict() for r in results]
    figures["floor"] = [run for f in floor.values() for run in f["runs"]]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"failed: {exc}")
