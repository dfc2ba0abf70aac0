"""Every Prometheus metric of the engine, in one place.

Counters and histograms live in the process that counts them. Under gunicorn and Celery's prefork pool set
PROMETHEUS_MULTIPROC_DIR (one directory per machine, emptied at start) so the values of all processes are
summed at scrape time. Gauges that describe the database (limit utilisation, unknown payouts, webhook
backlog) are not kept in memory at all: `DatabaseCollector` computes them with a few cheap queries per scrape,
so any process on any machine reports the same truth.
"""

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from config.db import FinishDeclined, GateClosed

logger = logging.getLogger(__name__)
T = TypeVar("T")

_AMOUNT_BUCKETS = (100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000, 50_000_000)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_JOB_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

ADVANCES_REQUESTED = Counter(
    "engine_advances_requested",
    "Advance requests by outcome (accepted/rejected) and rejection reason (the error code).",
    ["outcome", "reason"],
)
ADVANCE_AMOUNT = Counter(
    "engine_advance_amount_yuan",
    "Sum of requested advance amounts in yuan, by outcome (for rates; the ledger is the source of truth).",
    ["outcome"],
)
ADVANCE_AMOUNT_HISTOGRAM = Histogram(
    "engine_advance_request_amount_yuan",
    "Distribution of requested advance amounts in yuan.",
    ["outcome"],
    buckets=_AMOUNT_BUCKETS,
)
PAYOUT_ATTEMPTS = Counter(
    "engine_payout_attempts",
    "Payout attempts handed to a channel, by channel and outcome (succeeded/failed/unknown/error).",
    ["channel", "outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "engine_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered/retry/failed).",
    ["outcome"],
)
JOB_DURATION = Histogram(
    "engine_job_duration_seconds",
    "Run time of jobs and Celery tasks, by job name and outcome.",
    ["job", "outcome"],
    buckets=_JOB_BUCKETS,
)
JOB_ROWS = Counter(
    "engine_job_rows",
    "Rows processed by jobs, by job name.",
    ["job"],
)
HTTP_LATENCY = Histogram(
    "engine_http_request_duration_seconds",
    "HTTP request latency by method, route pattern and status class.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)


def _yuan(amount: Decimal | str | int | float) -> float:
    # A metric is a rate estimate, never money on record: float is fine here and only here.
    try:
        value = float(Decimal(str(amount)))
    except (InvalidOperation, ValueError):
        return 0.0
    return value if value == value and value not in (float("inf"), float("-inf")) else 0.0


def advance_requested(outcome: str, reason: str = "", amount: Decimal | str | int = 0) -> None:
    """Count one advance request. outcome: 'accepted' or 'rejected'; reason: the EngineError code."""
    ADVANCES_REQUESTED.labels(outcome=outcome, reason=reason or "none").inc()
    value = _yuan(amount) if amount else 0.0
    if value > 0:
        ADVANCE_AMOUNT.labels(outcome=outcome).inc(value)
        ADVANCE_AMOUNT_HISTOGRAM.labels(outcome=outcome).observe(value)


def count_advance_requests(func: Callable[..., T]) -> Callable[..., T]:
    """Decorator for funding.services.advances.advance_request: counts accepted and rejected requests."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> T:
        amount = kwargs.get("amount", 0)
        try:
            result = func(*args, **kwargs)
        except (GateClosed, FinishDeclined):
            # Not a request of its own: its idempotency key was taken already (a replay, a duplicate), or its
            # one-statement attempt was undone and the caller asks again (counted then).
            raise
        except Exception as exc:
            reason = getattr(exc, "code", None) or "error"
            advance_requested("rejected", reason, amount)
            raise
        advance_requested("accepted", "", getattr(result, "amount", amount))
        return result

    return wrapper


def payout_attempt(channel: str, outcome: str) -> None:
    PAYOUT_ATTEMPTS.labels(channel=channel or "unknown", outcome=outcome).inc()


def webhook_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


def job_observe(job: str, seconds: float, *, rows: int | None = None, outcome: str = "ok") -> None:
    JOB_DURATION.labels(job=job, outcome=outcome).observe(seconds)
    if rows:
        JOB_ROWS.labels(job=job).inc(rows)


class _RowCount:
    def __init__(self) -> None:
        self.rows = 0

    def add(self, count: int) -> None:
        self.rows += count


@contextmanager
def job_timer(job: str) -> Iterator[_RowCount]:
    """`with job_timer("accrue_fees") as run: ...; run.add(n)` records duration, outcome and rows."""
    counter = _RowCount()
    started = time.monotonic()
    outcome = "error"
    try:
        yield counter
        outcome = "ok"
    finally:
        job_observe(job, time.monotonic() - started, rows=counter.rows, outcome=outcome)


def http_request_observe(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method=method, route=route, status=f"{status // 100}xx").observe(seconds)


class DatabaseCollector:
    """Gauges read from PostgreSQL at scrape time, each query bounded by a statement timeout."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError, connection, transaction

        up = GaugeMetricFamily("engine_db_metrics_up", "1 when the database gauges could be read.")
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = 2000")
                families = list(_database_families(cursor))
        except DatabaseError:
            logger.warning("database metrics unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_families(cursor) -> Iterator[GaugeMetricFamily]:
    limit = GaugeMetricFamily("engine_credit_line_limit_yuan", "Effective limit of the active credit line.",
                              labels=["company"])
    used = GaugeMetricFamily("engine_credit_line_used_yuan", "Reserved plus outstanding on the credit line.",
                             labels=["company"])
    ratio = GaugeMetricFamily("engine_credit_line_utilisation_ratio",
                              "(reserved + outstanding) / effective limit.", labels=["company"])
    cursor.execute(
        """
        SELECT c.code, l.effective_limit, l.reserved + l.outstanding
          FROM funding_creditline l JOIN funding_company c ON c.id = l.company_id
         WHERE l.status IN ('active', 'frozen', 'suspended')
        """
    )
    for code, effective, in_use in cursor.fetchall():
        # Prometheus samples are floats: converted here, at the export edge, from the stored Decimals.
        limit.add_metric([code], float(effective))
        used.add_metric([code], float(in_use))
        ratio.add_metric([code], float(in_use / effective) if effective else 0.0)
    yield from (limit, used, ratio)

    cursor.execute(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(updated_at))"
        " FROM funding_payout WHERE status = %s",
        ["unknown"],
    )
    count, oldest = cursor.fetchone()
    unknown = GaugeMetricFamily("engine_payouts_unknown", "Payouts whose outcome is unknown.")
    unknown.add_metric([], count)
    unknown_age = GaugeMetricFamily("engine_payouts_unknown_oldest_age_seconds",
                                    "Age of the oldest unknown payout (0 when there is none).")
    unknown_age.add_metric([], float(oldest or 0))
    yield from (unknown, unknown_age)

    cursor.execute(
        """
        SELECT status, count(*), EXTRACT(EPOCH FROM now() - min(created_at))
          FROM funding_webhookevent WHERE status IN ('pending', 'failed') GROUP BY status
        """
    )
    rows = {status: (n, age) for status, n, age in cursor.fetchall()}
    backlog = GaugeMetricFamily("engine_webhook_backlog", "Webhook events waiting for delivery.")
    backlog.add_metric([], rows.get("pending", (0, None))[0])
    backlog_age = GaugeMetricFamily("engine_webhook_backlog_oldest_age_seconds",
                                    "Age of the oldest undelivered webhook event (0 when there is none).")
    backlog_age.add_metric([], float(rows.get("pending", (0, None))[1] or 0))
    failed = GaugeMetricFamily("engine_webhook_failed", "Webhook events given up on, waiting for staff.")
    failed.add_metric([], rows.get("failed", (0, None))[0])
    yield from (backlog, backlog_age, failed)

    yield from _calendar_families()
    yield from _reconciliation_families(cursor)


def _reconciliation_families(cursor) -> Iterator[GaugeMetricFamily]:
    """The latest integrity check (check_integrity, end of day) and the reconciliation work queue."""
    cursor.execute(
        "SELECT passed, jsonb_array_length(problems), EXTRACT(EPOCH FROM now() - finished_at)"
        " FROM settlement_integritycheckrun ORDER BY finished_at DESC, id DESC LIMIT 1"
    )
    latest = cursor.fetchone()
    failed = GaugeMetricFamily(
        "engine_integrity_check_failed",
        "1 while the latest integrity check failed (trial balance, account totals, line outstanding vs "
        "receivable, in transit vs unresolved attempts): alert; run check_integrity for the details.",
    )
    failed.add_metric([], 0 if latest is None or latest[0] else 1)
    problems = GaugeMetricFamily("engine_integrity_check_problems", "Problems found by the latest integrity check.")
    problems.add_metric([], 0 if latest is None else latest[1])
    age = GaugeMetricFamily("engine_integrity_check_age_seconds",
                            "Seconds since the latest integrity check (-1: never run).")
    age.add_metric([], -1 if latest is None else float(latest[2]))
    cursor.execute("SELECT count(*) FROM settlement_reconciliationexception WHERE status = 'open'")
    open_exceptions = GaugeMetricFamily("engine_reconciliation_exceptions_open",
                                        "Reconciliation exceptions waiting in the staff work queue.")
    open_exceptions.add_metric([], cursor.fetchone()[0])
    yield from (failed, problems, age, open_exceptions)


def _calendar_families() -> Iterator[GaugeMetricFamily]:
    from funding.selectors import CALENDAR_WARNING_DAYS, calendar_outlook

    outlook = calendar_outlook()
    if outlook.business_date is None:
        return
    ahead = GaugeMetricFamily(
        "engine_calendar_published_days_ahead",
        "Calendar days from the business date to the last published calendar day (-1: the business date's own "
        "year is not published).",
    )
    ahead.add_metric([], outlook.days_left if outlook.days_left is not None else -1)
    due = GaugeMetricFamily(
        "engine_calendar_publication_due",
        f"1 from {CALENDAR_WARNING_DAYS} days before the last published calendar day: publish the next year "
        "(calendar_propose / calendar_approve) or advances maturing in it are refused.",
    )
    due.add_metric([], 1 if outlook.warning else 0)
    yield from (ahead, due)


def multiprocess_dir_reset() -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR before the first process counts: old files would be summed in.

    Call once from the parent (gunicorn's on_starting, Celery's celeryd_init). Give each parent its own
    directory: web and every worker service (docs/deployment.md).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.glob("*.db"):
        child.unlink()


def metrics_exposition() -> tuple[bytes, str]:
    """The text a scrape returns: this machine's process metrics plus the database gauges."""
    from prometheus_client import REGISTRY, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return generate_latest(registry) + generate_latest(database), CONTENT_TYPE_LATEST
