"""API throughput and latency: POST /api/v1/advances (3 payouts each) spread over 100 companies.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/api.py [--seconds 10]

Creates a fresh database (--db, dropped at the end unless --keep-db), migrates it, seeds 100 companies with
active lines and API keys through the services, starts gunicorn (--workers, default cores + 1) and drives
it from this process: closed loop at several client counts to find the peak, then open loop at fixed rates
(half the peak and --open-rates). Then the engine and pgbench (the same essential SQL per advance) run
alternately at the peak's concurrency, --rounds times each, and the median of the rounds' ratios
engine/baseline is printed. --profile samples one worker with py-spy during an
extra closed-loop run and prints where the time goes. --json PATH writes the figures for docs/benchmarks.md.

--defaults picks the engine's configuration (default: both, one after the other, each on a fresh database):
- ``bench``: the API path alone. Dispatch and webhook enqueue on commit off, persistent connections, the
  throttle counters in Redis.
- ``production``: what a deployment gets without tuning anything (config/settings.py defaults): dispatch and
  webhook enqueue on commit on (each accepted advance also publishes its dispatch task to the broker; no worker
  consumes them here), persistent connections and the Redis throttle cache, which production requires.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402


def machine() -> dict:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for row in f:
            if row.startswith("MemTotal:"):
                mem_kb = int(row.split()[1])
    _, url = h.database_urls("postgres")
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except Exception:  # noqa: BLE001
        pg = "?"
    cpu = "?"
    try:
        cpu = next(
            row.split(":", 1)[1].strip() for row in open("/proc/cpuinfo") if row.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "postgresql": pg,
        "python": platform.python_version(),
        # Other work on the machine skews the figures: say how busy it was when the run started.
        "loadavg_at_start": open("/proc/loadavg").read().split()[0],
    }


def parse_args(argv=None, *, default_db: str = "bench_api") -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10, help="length of each measurement (default 10)")
    p.add_argument("--clients", default="4,8,16,32", help="closed-loop client counts (default 4,8,16,32)")
    p.add_argument("--open-rates", default="0.8", help="extra open-loop rates as fractions of the peak")
    # cores + 1: a request keeps its worker's core busy most of its time (the database answers in well under a
    # millisecond), so more processes only add context switches. Measured on 2 cores: 3 workers 567 adv/s at
    # 4 clients, 5 workers 508 at 16 (docs/benchmarks.md). Production's default stays 2 x cores + 1
    # (config/gunicorn.py), for a database across a network.
    p.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    p.add_argument("--companies", type=int, default=100)
    p.add_argument("--db", default=default_db, help="name of the database to (re)create")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--broker",
        default=os.environ.get("BENCH_REDIS_URL")
        or os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        help="Redis for the throttle counters (and the broker, idle here: dispatch is off)",
    )
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--rounds", type=int, default=3, help="engine / pgbench rounds for the ratio (default 3)")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--defaults", choices=("both", "bench", "production"), default="both")
    return p.parse_args(argv)


# Environment differences of each configuration from h.engine_env (which is the bench configuration).
# None removes a variable so config/settings.py's default applies.
CONFIGURATIONS: dict[str, dict[str, str | None]] = {
    "bench": {},
    "production": {
        "DISBURSEMENT_DISPATCH_ON_COMMIT": None,
        "WEBHOOK_ENQUEUE_ON_COMMIT": None,
        "DATABASE_CONN_MAX_AGE": None,
    },
}


def queue_prefix(db: str) -> str:
    return f"{db}."


def queues_drop(broker_url: str, prefix: str) -> None:
    """Delete the Redis keys of the queues named `prefix`* (the tasks a bench published)."""
    if not broker_url.startswith("redis://"):
        return
    import redis

    client = redis.Redis.from_url(broker_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


class Bench:
    """Fresh database + seeded companies + gunicorn; stop() cleans everything up."""

    def __init__(self, args: argparse.Namespace, companies: list[dict], configuration: str = "bench"):
        self.args = args
        print(f"creating database {args.db} ...", flush=True)
        self.db_url = h.database_recreate(args.db)
        self.env = h.engine_env(self.db_url, args.broker)
        for name, value in CONFIGURATIONS[configuration].items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        # The tasks published with production defaults go to this run's own queues (nobody consumes them;
        # dropped at the end), never to the queues of a test or a worker sharing the Redis database.
        self.env["CELERY_QUEUE_PREFIX"] = queue_prefix(args.db)
        started = time.monotonic()
        self.companies = h.engine_prepare(self.env, companies)
        print(f"migrated and seeded {len(self.companies)} companies in {time.monotonic() - started:.1f}s")
        (h.ROOT / "var").mkdir(exist_ok=True)
        self.server = h.Gunicorn(self.env, args.workers, h.ROOT / "var" / f"{args.db}-gunicorn.log")
        self.server.wait_ready()
        print(f"gunicorn: {args.workers} sync workers on port {self.server.port}", flush=True)
        # Warm up: imports, connections, caches of every worker.
        warm = [c for c in self.companies if c["code"].startswith("BENCH-")]
        h.closed_loop(self.server.port, warm, args.workers * 2, 2.0, "warm-up")

    def stop(self) -> None:
        self.server.stop()
        queues_drop(self.args.broker, queue_prefix(self.args.db))
        if not self.args.keep_db:
            h.database_drop(self.args.db)

    def profile(self, clients: int) -> list[str]:
        """py-spy on one worker while `clients` closed-loop clients run."""
        out = h.ROOT / "var" / f"{self.args.db}-profile.txt"
        out.unlink(missing_ok=True)
        pid = self.server.worker_pids()[0]
        seconds = max(5, int(self.args.seconds))
        spy = h.profile_worker(pid, seconds, out)
        if spy is None:
            return ["(py-spy not installed: pip install py-spy)"]
        h.closed_loop(self.server.port, self.companies, clients, seconds + 2, "profiled")
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        return h.profile_summary(out)


def main(argv=None) -> dict:
    args = parse_args(argv)
    info = machine()
    print(f"machine: {info}")
    names = ["bench", "production"] if args.defaults == "both" else [args.defaults]
    results: dict = {"machine": info, "workers": args.workers, "seconds": args.seconds}
    for number, name in enumerate(names):
        print(f"\n==== configuration: {name} ====")
        # py-spy once: the profile of the API path is the same in both.
        results[name] = run_configuration(args, name, profile=args.profile and number == 0)
    print("\n==== summary ====")
    for name in names:
        figures = results[name]
        base = figures.get("baseline", {})
        ratio = f"{base['ratio']:.1%} of pgbench" if base else "no baseline"
        print(f"{name:>10}: {figures['closed']['rate']:.1f} advances/s at {figures['closed']['clients']} clients, "
              f"p99 at half the peak {figures['open'][0]['p99_ms']} ms, {ratio}  (target >= 20%)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def run_configuration(args: argparse.Namespace, configuration: str, *, profile: bool) -> dict:
    levels = [int(x) for x in args.clients.split(",")]
    specs = [{"code": f"BENCH-{i:03d}", "limit": "1000000000000.00"} for i in range(args.companies)]
    bench = Bench(args, specs, configuration)
    figures: dict = {"configuration": configuration}
    try:
        port, companies = bench.server.port, bench.companies
        print("\n-- closed loop (find the peak)")
        peak, peak_clients = h.find_peak(port, companies, levels, args.seconds, print)
        figures["closed"] = peak.as_dict() | {"clients": peak_clients}
        print(f"peak: {peak.rate:.1f} advances/s at {peak_clients} clients")
        print("\n-- open loop (fixed arrival rates; latency from the scheduled start)")
        fractions = [0.5] + [float(x) for x in args.open_rates.split(",") if x]
        figures["open"] = []
        for fraction in fractions:
            rate = peak.rate * fraction
            r = h.open_loop(port, companies, rate, args.seconds, f"open loop {fraction:.0%} = {rate:.0f}/s")
            print(r.line())
            figures["open"].append(r.as_dict() | {"fraction": fraction, "offered": round(rate, 1)})
        if not args.no_baseline:
            figures["baseline"] = baseline_rounds(args, bench, peak_clients)
        half = figures["open"][0]
        print(f"p99 at half the peak: {half['p99_ms']} ms  (target < 50 ms)")
        print(f"\n-- where the CPU goes (all processes on this machine, from /proc), {peak_clients} clients")
        figures["cpu"] = h.cpu_per_advance(port, companies, peak_clients, args.seconds)
        print("\n".join(figures["cpu"]))
        if profile:
            print(f"\n-- where the time goes: py-spy on one worker, {peak_clients} clients, share of samples")
            figures["profile"] = bench.profile(peak_clients)
            print("\n".join(figures["profile"]))
    finally:
        bench.stop()
    return figures


def baseline_rounds(args: argparse.Namespace, bench: Bench, clients: int) -> dict:
    """The engine and pgbench (the same essential SQL per advance) alternately, `--rounds` times each, at the
    peak's client count. The ratio is taken within each round and the median reported: this machine's speed
    drifts by a third within minutes, and a ratio of two figures measured minutes apart measured the drift."""
    port, companies = bench.server.port, bench.companies
    print(f"\n-- raw-SQL baseline: pgbench, same essential SQL per advance, {clients} clients, "
          f"alternating with the engine ({args.rounds} rounds)")
    rounds = []
    for number in range(1, args.rounds + 1):
        # The machine's busy CPU per accepted advance in each run: tells a slow round that spent more CPU per
        # advance (a slower machine phase) from one that left cores idle.
        busy_at_start: list[float] = []
        engine = h.closed_loop(port, companies, clients, args.seconds, f"round {number}: engine",
                               on_start=lambda started=busy_at_start: started.append(h.cpu_busy_seconds()))
        engine_cpu = (h.cpu_busy_seconds() - busy_at_start[0]) / max(engine.accepted, 1) * 1000
        start = h.cpu_busy_seconds()
        base = h.baseline_run(bench.db_url, clients, args.seconds, args.companies, f"round {number}: pgbench")
        base_cpu = (h.cpu_busy_seconds() - start) / max(base.accepted, 1) * 1000
        ratio = engine.rate / base.rate if base.rate else float("nan")
        print(engine.line() + f"  CPU {engine_cpu:.2f} ms/adv")
        print(base.line() + f"  CPU {base_cpu:.2f} ms/adv  ratio {ratio:.1%}")
        rounds.append({"engine": engine.as_dict(), "pgbench": base.as_dict(), "ratio": round(ratio, 3)})
    ratio = statistics.median(r["ratio"] for r in rounds)
    spread = ", ".join(f"{r['ratio']:.1%}" for r in rounds)
    print(f"ratio engine/baseline: {ratio:.1%} (median of {spread})  (target >= 20%)")
    return {"clients": clients, "rounds": rounds, "ratio": ratio,
            "rate": statistics.median(r["pgbench"]["rate"] for r in rounds)}


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"failed: {exc}")
