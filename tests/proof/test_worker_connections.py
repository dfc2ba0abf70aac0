"""A Celery worker keeps its database connection from task to task when CONN_MAX_AGE asks for it (Celery's Django
fix-up alone would open a new one for every task: config/celery.py, settings.CELERY_DB_REUSE_MAX)."""

import subprocess
import sys
import time

import pytest
import redis
from django.db import connection

from tests.proof.conftest import QUEUE_PREFIX, ROOT, CeleryWorker, engine_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _publish(env: dict[str, str], count: int) -> None:
    """`count` dispatch tasks for an advance that does not exist (each ends after one lookup), published with the
    engine's own settings (its queue names carry the test's prefix)."""
    subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from config.celery import app; "
         f"[app.send_task('settlement.dispatch_batch', args=[-1]) for _ in range({count})]"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, check=True, timeout=60,
    )


def _unacked(broker_url: str) -> int:
    client = redis.Redis.from_url(broker_url)
    try:
        return client.hlen("unacked")  # kombu's hash of delivered, not yet acknowledged messages (every queue's)
    finally:
        client.close()


def _drained(broker_url: str, unacked_before: int) -> None:
    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if not client.llen(f"{QUEUE_PREFIX}disbursement") and client.hlen("unacked") <= unacked_before:
                time.sleep(0.5)  # the last task's end (its postrun) after its ack
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError("the worker did not drain its queue")


def _worker_backends() -> set[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return set(cursor.fetchall())


def _backends_after_two_rounds(broker_url: str, **extra: str) -> tuple[set, set]:
    env = engine_env(broker_url, **extra)
    worker = CeleryWorker(env, name="connections", concurrency=1)
    unacked = _unacked(broker_url)
    try:
        _publish(env, 10)
        _drained(broker_url, unacked)
        first = _worker_backends()
        _publish(env, 10)
        _drained(broker_url, unacked)
        return first, _worker_backends()
    finally:
        worker.stop()


def test_a_worker_keeps_its_connection_across_tasks_with_persistent_connections(broker_url):
    first, second = _backends_after_two_rounds(broker_url, DATABASE_CONN_MAX_AGE="600")
    assert len(first) == 1, first  # the worker's one process, connected once
    assert second == first  # the same backend, started before the second round's ten tasks


def test_a_worker_closes_its_connection_after_each_task_without_them(broker_url):
    first, second = _backends_after_two_rounds(broker_url, DATABASE_CONN_MAX_AGE="0")
    assert first == second == set()  # closed at the end of each task, as Django does after each request
