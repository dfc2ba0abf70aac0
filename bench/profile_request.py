"""Where one accepted POST /api/v1/advances spends its time, in-process (no HTTP, no load generator).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/profile_request.py
        [--n 2000] [--cprofile 40] [--sql] [--phases] [--pg-by-statement] [--defaults production]

Fresh database `bench_profile` (dropped at the end), one seeded company, then N signed requests through
Django's WSGI handler exactly as gunicorn calls it (same settings as bench/api.py). Prints the Python CPU
and wall time per request, the SQL statements of one request, and optionally the top cProfile entries.
PostgreSQL's own CPU is not in these figures: it runs in its own processes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import secrets
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from advance_client import sign_request  # noqa: E402


def environ_for(company: dict, body: bytes) -> dict:
    path = "/api/v1/advances"
    timestamp = str(int(time.time()))
    nonce = secrets.token_urlsafe(18)
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_X_API_KEY": company["key"],
        "HTTP_X_TIMESTAMP": timestamp,
        "HTTP_X_NONCE": nonce,
        "HTTP_X_SIGNATURE": sign_request(company["secret"], "POST", path, timestamp, nonce, body),
        "HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex,
    }


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a local PostgreSQL backend, from /proc (same machine only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(url: str):
    """CPU seconds Redis has used (INFO cpu: user + system, all its clients), or NaN without Redis."""
    import redis

    client = redis.Redis.from_url(url) if url.startswith("redis://") else None

    def read() -> float:
        if client is None:
            return float("nan")
        info = client.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    return read


def backend_oncpu_ns(pid: int) -> int:
    """Nanoseconds a local process has run on a CPU (/proc/PID/schedstat, first field)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def pg_by_statement(one, connection, backend: int, n: int) -> None:
    """Run n more requests and print the backend's CPU by statement (first words) and for the COMMITs."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    spent: dict[str, list[int]] = {}

    def add(label: str, ns: int) -> None:
        entry = spent.setdefault(label, [0, 0])
        entry[0] += ns
        entry[1] += 1

    def measure(execute, sql, params, many, context):
        before = backend_oncpu_ns(backend)
        try:
            return execute(sql, params, many, context)
        finally:
            add(" ".join(sql.split())[:70], backend_oncpu_ns(backend) - before)

    original_commit = BaseDatabaseWrapper._commit

    def commit(self):
        before = backend_oncpu_ns(backend)
        try:
            return original_commit(self)
        finally:
            add("COMMIT", backend_oncpu_ns(backend) - before)

    BaseDatabaseWrapper._commit = commit
    total0 = backend_oncpu_ns(backend)
    try:
        with connection.execute_wrapper(measure):
            for _ in range(n):
                one()
    finally:
        BaseDatabaseWrapper._commit = original_commit
    total = backend_oncpu_ns(backend) - total0
    print(f"PostgreSQL backend CPU per request, by statement ({n} requests; total {total / n / 1000:.0f} us):")
    for label, (ns, count) in sorted(spent.items(), key=lambda item: -item[1][0]):
        print(f"  {ns / n / 1000:7.0f} us  x{count / n:.2f}  {label}")
    print(f"  {(total - sum(v[0] for v in spent.values())) / n / 1000:7.0f} us  outside them (BEGIN, between)")


# --phases: functions on the request's path (module, attribute), timed inclusively by this process's CPU. Nested
# entries are included in their callers'; "SQL ..." lines split PreparedCursor.execute by statement.
PHASES = [
    ("django.core.handlers.wsgi", "WSGIHandler.__call__"),
    ("django.core.handlers.wsgi", "WSGIRequest.__init__"),
    ("django.core.handlers.base", "BaseHandler.resolve_request"),
    ("config.ops.middleware", "RequestIdMiddleware.__call__"),
    ("config.middleware", "SignedApiMiddleware.__call__"),
    ("rest_framework.views", "APIView.dispatch"),
    ("rest_framework.views", "APIView.initial"),
    ("rest_framework.views", "APIView.perform_authentication"),
    ("rest_framework.views", "APIView.check_throttles"),
    ("rest_framework.views", "APIView.finalize_response"),
    ("django.template.response", "SimpleTemplateResponse.render"),
    ("funding.api.idempotency", "_prepare"),
    ("funding.api.idempotency", "_claim"),
    ("funding.api.idempotency", "_run"),
    ("funding.api.idempotency", "idempotency_complete"),
    ("funding.api.idempotency", "idempotency_claim_result"),  # (as imported where they are called)
    ("funding.services.advances", "gated_fetchone"),
    ("funding.api.services", "commit_with"),
    ("funding.api.idempotency", "_rendered_once"),
    ("funding.api.views", "advance_request"),
    ("funding.api.views", "advance_representation"),
    ("funding.api.serializers", "advance_create_fast"),
    ("funding.services.advances", "_as_loaded"),
    ("config.db", "PreparedCursor.execute"),
    ("psycopg._queries", "PostgresQuery.convert"),
    ("django.db.transaction", "Atomic.__enter__"),
    ("django.db.transaction", "Atomic.__exit__"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper._commit"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper.run_and_clear_commit_hooks"),
    ("config.ops.metrics", "advance_requested"),
]


def phases_install() -> dict[str, list[int]]:
    """Wrap every PHASES function with a CPU counter; returns {name: [nanoseconds, calls]}."""
    import importlib

    spent: dict[str, list[int]] = {}

    def timed(name: str, function):
        entry = spent.setdefault(name, [0, 0])
        by_statement = name == "PreparedCursor.execute"

        def wrapper(*args, **kwargs):
            started = time.process_time_ns()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.process_time_ns() - started
                entry[0] += elapsed
                entry[1] += 1
                if by_statement:
                    statement = spent.setdefault("SQL " + " ".join(args[1].split())[:50], [0, 0])
                    statement[0] += elapsed
                    statement[1] += 1

        return wrapper

    for module_name, attribute in PHASES:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(attribute, getattr(owner, name)))
    return spent


def phases_print(spent: dict[str, list[int]], n: int) -> None:
    print(f"Python CPU per request by phase (inclusive; {n} requests):")
    for name, (ns, calls) in sorted(spent.items(), key=lambda item: -item[1][0]):
        print(f"  {ns / n / 1000:7.1f} us  x{calls / n:.2f}  {name}")


def ab_blocks(args: argparse.Namespace, one, backend: int) -> None:
    """Blocks of --n requests answered in one statement and the transactional way, alternately: this machine's
    speed drifts within minutes, so each way is measured beside the other and the medians compared."""
    import statistics

    from funding.api import idempotency

    outside_transaction = idempotency._outside_transaction
    ways = {"one statement": outside_transaction, "transactional": lambda: False}
    spent: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for block in range(args.ab):
        for way in (ways if block % 2 == 0 else reversed(ways)):
            idempotency._outside_transaction = ways[way]
            pg0, cpu0 = backend_cpu(backend), time.process_time()
            for _ in range(args.n):
                one()
            spent[way].append(((time.process_time() - cpu0) / args.n * 1e6, (backend_cpu(backend) - pg0) / args.n * 1e6))
    idempotency._outside_transaction = outside_transaction
    print(f"{args.ab} blocks of {args.n} requests each way, alternately (us per request, median of the blocks):")
    for way, blocks in spent.items():
        python = statistics.median(b[0] for b in blocks)
        pg = statistics.median(b[1] for b in blocks)
        print(f"  {way:<14} Python {python:7.1f}  PostgreSQL backend {pg:7.1f}  both {python + pg:7.1f}"
              f"   (Python by block: {', '.join(f'{b[0]:.0f}' for b in blocks)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--cprofile", type=int, default=0, help="print the top K cProfile entries")
    parser.add_argument("--sql", action="store_true", help="print the SQL of one request")
    parser.add_argument("--pg-by-statement", action="store_true",
                        help="PostgreSQL backend CPU per statement and per COMMIT (/proc/PID/schedstat, same machine)")
    parser.add_argument("--cpu-timer", action="store_true",
                        help="with --cprofile: time functions by this process's CPU, not the wall clock (waits on "
                             "PostgreSQL and Redis then count only for what the client itself spends)")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after the warm-up")
    parser.add_argument("--phases", action="store_true",
                        help="after the timed run, N more requests with CPU counters around the request's functions "
                             "(PHASES): where the Python CPU goes, without a profiler's overhead")
    parser.add_argument("--callees", metavar="PATTERN", help="with --cprofile: what the functions matching PATTERN call")
    parser.add_argument("--ab", type=int, default=0, metavar="BLOCKS",
                        help="instead of the timed run: BLOCKS blocks of N requests each way, alternately, answered "
                             "in the request's one statement (the default outside a transaction) and the "
                             "transactional way (BEGIN, the statement, the answer stored with COMMIT); medians")
    parser.add_argument("--db", default="bench_profile")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--defaults", choices=("bench", "production"), default="bench",
                        help="the engine's configuration, as bench/api.py --defaults (production: dispatch and "
                             "webhook enqueue on commit on, so each request also publishes its dispatch task)")
    args = parser.parse_args()

    from api import CONFIGURATIONS, queue_prefix

    db_url = h.database_recreate(args.db)
    broker = os.environ.get("BENCH_REDIS_URL") or os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    env = h.engine_env(db_url, broker)
    for name, value in CONFIGURATIONS[args.defaults].items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["CELERY_QUEUE_PREFIX"] = queue_prefix(args.db)  # its own queues, dropped at the end
    companies = h.engine_prepare(env, [{"code": "PROF01", "limit": "900000000.00"}])
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    app = get_wsgi_application()
    company = companies[0]
    statuses: dict[str, int] = {}

    def one() -> None:
        def start_response(status, headers):
            statuses[status] = statuses.get(status, 0) + 1

        b"".join(app(environ_for(company, h.advance_body()), start_response))

    for _ in range(50):  # warm up: imports, connection, caches
        one()
    gc_time = [0.0, 0]  # seconds in the garbage collector, collections

    def gc_timing(phase: str, info: dict) -> None:
        if phase == "start":
            gc_timing.started = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_timing.started
            gc_time[1] += 1

    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # the loaded app's objects are never scanned again (measured: ~0.04 ms per request less)
    gc.callbacks.append(gc_timing)
    statements: list[str] = []

    def capture(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        one()
    print(f"SQL statements in one request: {len(statements)}")
    if args.sql:
        for sql in statements:
            print("  ", " ".join(sql.split())[:160])

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    if args.ab:
        ab_blocks(args, one, backend)
        cleanup(args, broker, connection)
        return
    redis_cpu = _redis_cpu(broker)
    redis0 = redis_cpu()
    pg0, cpu0, wall0 = backend_cpu(backend), time.process_time(), time.perf_counter()
    for _ in range(args.n):
        one()
    cpu, wall, pg = time.process_time() - cpu0, time.perf_counter() - wall0, backend_cpu(backend) - pg0
    redis = redis_cpu() - redis0
    print(f"{args.n} requests ({args.defaults} defaults): {wall / args.n * 1000:.2f} ms wall, "
          f"{cpu / args.n * 1000:.2f} ms Python CPU, {pg / args.n * 1000:.2f} ms PostgreSQL backend CPU, "
          f"{redis / args.n * 1000:.3f} ms Redis CPU each; statuses {statuses}")
    print(f"garbage collector: {gc_time[0] / args.n * 1000:.3f} ms per request ({gc_time[1]} collections"
          f"{', app frozen' if args.gc_freeze else ''})")
    if args.pg_by_statement:
        pg_by_statement(one, connection, backend, min(args.n, 1000))
    if args.phases:
        spent = phases_install()
        for _ in range(200):  # the wrappers' own first calls
            one()
        for entry in spent.values():
            entry[:] = [0, 0]
        for _ in range(args.n):
            one()
        phases_print(spent, args.n)
    if args.cprofile:
        profiler = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
        profiler.enable()
        for _ in range(min(args.n, 500)):
            one()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.cprofile)
        if args.callees:
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_callees(args.callees)
        print(out.getvalue())
    cleanup(args, broker, connection)


def cleanup(args: argparse.Namespace, broker: str, connection) -> None:
    """The run's queues always; its database unless --keep."""
    from api import queue_prefix, queues_drop

    queues_drop(broker, queue_prefix(args.db))
    connection.close()
    if not args.keep:
        h.database_drop(args.db)


if __name__ == "__main__":
    main()
