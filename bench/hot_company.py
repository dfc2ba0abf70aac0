"""Hot company: every POST /api/v1/advances for one company, so all requests contend on one credit line.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/hot_company.py [--seconds 10]

Same setup as bench/api.py (fresh database, 100 companies, gunicorn). In one run it measures, at each client
count, the spread figure (requests over 100 companies) and the hot figure (all on one company), prints the
ratio hot/spread at the peak, an open-loop run at half the hot peak, and pgbench's hot baseline. A sampler
thread reads the hot line's counters every few milliseconds throughout and fails the run if it ever sees
reserved + outstanding above the effective limit. Finally an exhaustion phase drives a line whose limit
holds exactly --tight advances with more requests than that, and checks that exactly that many were
accepted, the rest refused with insufficient_limit, and the line ends exactly full, never over.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
from api import Bench, machine, parse_args  # noqa: E402


class LimitSampler(threading.Thread):
    """Reads reserved + outstanding and the effective limit of some lines as fast as it can."""

    def __init__(self, db_url: str, line_ids: list[int]):
        super().__init__(daemon=True)
        self.db_url = db_url
        self.line_ids = line_ids
        self.samples = 0
        self.violations: list[tuple] = []
        self.max_used: dict[int, Decimal] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self._halt.is_set():
                rows = conn.execute(
                    "SELECT id, reserved + outstanding, effective_limit FROM funding_creditline "
                    "WHERE id = ANY(%s)",
                    [self.line_ids],
                ).fetchall()
                for line_id, used, limit in rows:
                    self.samples += 1
                    self.max_used[line_id] = max(used, self.max_used.get(line_id, Decimal(0)))
                    if used > limit:
                        self.violations.append((line_id, used, limit))
                time.sleep(0.002)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def line_state(db_url: str, line_id: int) -> tuple[Decimal, Decimal, Decimal]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT reserved, outstanding, effective_limit FROM funding_creditline WHERE id = %s", [line_id]
        ).fetchone()


def main(argv=None) -> dict:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--tight", type=int, default=400, help="advances the exhaustion line's limit holds")
    extra.add_argument("--spread-rate", type=float, help="spread peak from bench/api.py, if known")
    known, rest = extra.parse_known_args(argv)
    args = parse_args(rest, default_db="bench_hot")
    levels = [int(x) for x in args.clients.split(",")]
    specs = [{"code": f"BENCH-{i:03d}", "limit": "1000000000000.00"} for i in range(args.companies)]
    tight_limit = Decimal(h.ADVANCE_AMOUNT) * known.tight
    specs.append({"code": "TIGHT", "limit": f"{tight_limit:.2f}"})
    info = machine()
    print(f"machine: {info}")
    bench = Bench(args, specs)
    figures: dict = {"machine": info, "workers": args.workers, "seconds": args.seconds}
    ok = True
    try:
        port = bench.server.port
        spread, hot, tight = bench.companies[:-1], bench.companies[:1], bench.companies[-1]
        sampler = LimitSampler(bench.db_url, [hot[0]["line_id"], tight["line_id"]])
        sampler.start()
        print("\n-- closed loop: spread over 100 companies vs all on one company")
        best_spread = best_hot = None
        rows = []
        for n in levels:
            s = h.closed_loop(port, spread, n, args.seconds, f"spread, {n} clients")
            print(s.line())
            t = h.closed_loop(port, hot, n, args.seconds, f"hot,    {n} clients")
            print(t.line())
            rows.append({"clients": n, "spread": s.as_dict(), "hot": t.as_dict()})
            if best_spread is None or s.rate > best_spread[0].rate:
                best_spread = (s, n)
            if best_hot is None or t.rate > best_hot[0].rate:
                best_hot = (t, n)
        figures["closed"] = rows
        spread_rate = known.spread_rate or best_spread[0].rate
        ratio = best_hot[0].rate / spread_rate
        figures["hot_peak"] = best_hot[0].as_dict() | {"clients": best_hot[1]}
        figures["spread_peak"] = best_spread[0].as_dict() | {"clients": best_spread[1]}
        figures["ratio_hot_spread"] = round(ratio, 3)
        print(
            f"peak hot {best_hot[0].rate:.1f}/s ({best_hot[1]} clients) vs spread {spread_rate:.1f}/s: "
            f"ratio {ratio:.1%}  (target >= 90%)"
        )
        rate = best_hot[0].rate / 2
        r = h.open_loop(port, hot, rate, args.seconds, f"hot open loop 50% = {rate:.0f}/s")
        print(r.line())
        figures["hot_open_half"] = r.as_dict() | {"offered": round(rate, 1)}
        if not args.no_baseline:
            base = h.baseline_run(bench.db_url, best_hot[1], args.seconds, 1, "pgbench hot baseline")
            print(base.line())
            figures["baseline_hot"] = base.as_dict() | {"ratio": round(best_hot[0].rate / base.rate, 3)}
            print(f"ratio engine hot / baseline hot: {best_hot[0].rate / base.rate:.1%}")

        print(f"\n-- exhaustion: a line that holds exactly {known.tight} advances, {best_hot[1]} clients")
        before = line_state(bench.db_url, tight["line_id"])
        ex = h.closed_loop(port, [tight], best_hot[1], max(3.0, known.tight / max(best_hot[0].rate, 1) * 1.5),
                           "exhaustion")
        print(ex.line())
        reserved, outstanding, limit = line_state(bench.db_url, tight["line_id"])
        print(f"line before {before}, after: reserved {reserved} outstanding {outstanding} limit {limit}")
        exhausted = ex.accepted == known.tight and reserved == limit and set(ex.statuses) <= {201, 422}
        print(f"exactly {known.tight} accepted, rest 422, line exactly full: {'OK' if exhausted else 'FAILED'}")
        ok &= exhausted
        figures["exhaustion"] = {"accepted": ex.accepted, "statuses": dict(ex.statuses), "ok": exhausted}
        sampler.stop()
        print(
            f"\nlimit sampler: {sampler.samples} samples, {len(sampler.violations)} over-limit moments; "
            f"max used {dict((k, str(v)) for k, v in sampler.max_used.items())}"
        )
        ok &= not sampler.violations
        figures["sampler"] = {"samples": sampler.samples, "violations": len(sampler.violations)}
        if args.profile:
            print(f"\n-- where the time goes (hot): py-spy on one worker, {best_hot[1]} clients")
            bench.companies = hot
            figures["profile"] = bench.profile(best_hot[1])
            print("\n".join(figures["profile"]))
    finally:
        bench.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    if not ok:
        sys.exit("FAILED: over-limit moment or wrong exhaustion count")
    return figures


if __name__ == "__main__":
    main()
