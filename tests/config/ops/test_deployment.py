"""The production layout, on this machine: gunicorn (2 workers) + 2 Celery workers on different queues + beat.

On the local PostgreSQL (a database created for the test, migrated, dropped afterwards) and RabbitMQ (quorum
queues under a unique name prefix, deleted afterwards). Bounded: every wait has a deadline, ~90 s in all.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
RABBITMQ_URL = os.environ.get("DEPLOY_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BUDGET_SECONDS = 150

pytestmark = pytest.mark.slow


def _answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        address = (parsed.hostname or "127.0.0.1", parsed.port or default_port)
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def wait_for(self, what: str, check, interval: float = 0.5, limit: float = 40.0):
        stop = time.monotonic() + min(limit, self.left())
        last = None
        while time.monotonic() < stop:
            try:
                result = check()
                if result:
                    return result
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = exc
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


@pytest.fixture
def deploy_database():
    """A dedicated database on the local PostgreSQL server (not the pytest one), dropped afterwards."""
    import psycopg

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(base)
    name = f"deploytest_{uuid.uuid4().hex[:10]}"
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def rabbitmq():
    if not _answers(RABBITMQ_URL, 5672):
        pytest.skip(f"RabbitMQ does not answer at {urlparse(RABBITMQ_URL).hostname}:5672; the deployment "
                    "test needs it (set DEPLOY_TEST_BROKER_URL to use another one)")
    prefix = f"deploytest-{uuid.uuid4().hex[:8]}-"
    yield prefix
    from kombu import Connection

    from config.settings import ENGINE_QUEUES

    with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
        for name in ENGINE_QUEUES:
            conn.channel().queue_delete(f"{prefix}{name}")
        conn.channel().exchange_delete(f"{prefix}engine")


def test_production_layout_starts_serves_probes_and_runs_tasks_on_their_queues(
    deploy_database, rabbitmq, tmp_path
):
    deadline = Deadline(BUDGET_SECONDS)
    port = _free_port()
    prefix = rabbitmq
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PROMETHEUS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://127.0.0.1",
        "DJANGO_ADMIN_URL": "staff/",
        "API_SECRET_ENCRYPTION_KEY": "aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVzISE=",
        "DATABASE_URL": deploy_database,
        "DATABASE_POOL": "true",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "CELERY_BROKER_URL": RABBITMQ_URL,
        "CELERY_QUEUE_PREFIX": prefix,
        "LOG_FORMAT": "json",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
    }

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=min(timeout, deadline.left()))

    migrate = run("manage.py", "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    seed = run("-c", "import django; django.setup(); "
                     "from tests.factories import calendar_and_business_date; calendar_and_business_date()")
    assert seed.returncode == 0, seed.stderr[-3000:]

    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}

    def start(name: str, argv: list[str], **extra_env: str) -> None:
        logs[name] = tmp_path / f"{name}.log"
        handle = logs[name].open("w")
        processes[name] = subprocess.Popen(
            argv, cwd=ROOT, env={**env, **extra_env}, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    try:
        start("web", [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
              PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom-web"))
        worker = [str(BIN / "celery"), "-A", "config", "worker", "--concurrency", "1", "--without-mingle",
                  "--without-gossip"]
        start("worker_events", [*worker, "-Q", f"{prefix}celery,{prefix}events", "-n", f"events-{prefix}@%h"])
        worker_metrics_port = _free_port()
        start("worker_disbursement", [*worker, "-Q", f"{prefix}disbursement", "-n", f"disb-{prefix}@%h"],
              PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom-disbursement"),
              CELERY_METRICS_PORT=str(worker_metrics_port))
        start("beat", [str(BIN / "celery"), "-A", "config", "beat", "--pidfile=",
                       "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                       "-s", str(tmp_path / "beat-schedule")])

        base = f"http://127.0.0.1:{port}"
        health = deadline.wait_for("/healthz", lambda: requests.get(f"{base}/healthz", timeout=2))
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = requests.get(f"{base}/readyz", timeout=10, headers={"X-Request-Id": "deploy-test-000001"})
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "checks": {
            "database": "ok", "migrations": "ok", "broker": "ok", "cache": "ok", "business_date": "ok",
            "calendar": "ok",
        }, "warnings": []}
        assert ready.headers["X-Request-Id"] == "deploy-test-000001"
        # Production settings are in force: anything else over plain HTTP is redirected to HTTPS.
        admin = requests.get(f"{base}/admin/", timeout=5, allow_redirects=False)
        assert admin.status_code == 301 and admin.headers["Location"].startswith("https://")
        scraped = requests.get(f"{base}/metrics", timeout=10)
        assert scraped.status_code == 200
        # Summed over both gunicorn workers through PROMETHEUS_MULTIPROC_DIR.
        assert 'engine_http_request_duration_seconds_count{method="GET",route="readyz",status="2xx"} 1.0' \
            in scraped.text

        # One task to each worker's queue; each must run on the worker that consumes that queue only.
        sent = run("-c", (
            "import django, json; django.setup(); "
            "from config.ops.context import request_id_var; "
            "from config.ops.tasks import retention_purge_task; "
            "request_id_var.set('deploy-test-req-000002'); "
            f"a = retention_purge_task.apply_async(queue='{prefix}events'); "
            f"b = retention_purge_task.apply_async(queue='{prefix}disbursement'); "
            "print(json.dumps([a.id, b.id]))"
        ), timeout=30)
        assert sent.returncode == 0, sent.stderr[-3000:]
        events_task, disbursement_task = json.loads(sent.stdout.strip().splitlines()[-1])

        def finished(worker: str, task_id: str) -> dict | None:
            for line in logs[worker].read_text().splitlines():
                if task_id in line and '"step": "finish"' in line:
                    return json.loads(line)
            return None

        line = deadline.wait_for("the events worker to run its task",
                                 lambda: finished("worker_events", events_task))
        assert line["state"] == "SUCCESS" and line["request_id"] == "deploy-test-req-000002"
        line = deadline.wait_for("the disbursement worker to run its task",
                                 lambda: finished("worker_disbursement", disbursement_task))
        assert line["state"] == "SUCCESS"
        # The worker serves its own metrics, summed over its pool processes.
        worker_metrics = requests.get(f"http://127.0.0.1:{worker_metrics_port}/metrics", timeout=5).text
        job = 'job="config.ops.tasks.retention_purge_task",outcome="ok"'
        assert f"engine_job_duration_seconds_count{{{job}}} 1.0" in worker_metrics
        assert finished("worker_events", disbursement_task) is None
        assert finished("worker_disbursement", events_task) is None

        # Exactly one beat, and it has written the schedule into the database.
        synced = deadline.wait_for("beat to sync its schedule", lambda: run(
            "-c", "import django; django.setup(); from django_celery_beat.models import PeriodicTask; "
                  "print(PeriodicTask.objects.filter(name='ops-retention-purge').count())", timeout=20,
        ).stdout.strip().endswith("1"), interval=1)
        assert synced
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited early: {logs[name].read_text()[-3000:]}"

        # One advance through the running layout: signed API request, disbursement worker, T+1 repayment.
        start("worker_webhooks", [*worker, "-Q", f"{prefix}webhooks", "-n", f"hooks-{prefix}@%h"])
        setup = run("-c", (
            "import django, json; django.setup(); "
            "from tests.factories import company_with_line; "
            "from settlement.models import Channel; "
            "from settlement.services.channels import channel_seed_simulated; "
            "from funding.api.services import api_key_issue; "
            "channel_seed_simulated(); "
            "[Channel.objects.filter(pk=c.pk).update(adapter_settings={**c.adapter_settings, 'failure_rate': 0, "
            "'timeout_rate': 0, 'late_success_rate': 0, 'latency_ms': 0}) for c in Channel.objects.all()]; "
            "company, _ = company_with_line(code='DEPLOY-A', daily_fee_rate='0.000300'); "
            "key = api_key_issue(company=company, actor_label='deploy-test'); "
            "print(json.dumps({'key': key.key_id, 'secret': key.secret, "
            "'account': company.settlement_account_no}))"
        ), timeout=30)
        assert setup.returncode == 0, setup.stderr[-3000:]
        demo = json.loads(setup.stdout.strip().splitlines()[-1])
        sys.path.insert(0, str(ROOT / "clients" / "python"))
        from advance_client import AdvanceClient

        session = requests.Session()
        session.headers["X-Forwarded-Proto"] = "https"  # as the TLS-terminating proxy would say
        client = AdvanceClient(base, api_key=demo["key"], api_secret=demo["secret"], session=session, timeout=10)
        advance = client.post("/api/v1/advances", {
            "external_id": "DEPLOY-0001", "currency": "CNY", "amount": "100.00", "use_own_funds": True,
            "payouts": [{"external_id": "P1", "beneficiary_name": "Shanghai Example Trading Co.",
                         "account_no": "6222020200112233445", "bank_code": "ICBC", "amount": "100.00"}],
        })
        assert (advance["status"], advance["advanced_amount"]) == ("reserved", "100.00")
        disbursed = deadline.wait_for(
            "the disbursement worker to pay the advance",
            lambda: (a := client.get(f"/api/v1/advances/{advance['id']}"))["status"] == "disbursed" and a,
            interval=1, limit=45,
        )
        # 100.00 x 0.000300 x 1 calendar day (2026-11-25 -> 2026-11-26), half-up.
        assert (disbursed["disbursed_amount"], disbursed["fee"], disbursed["due_date"]) == (
            "100.00", "0.03", "2026-11-26")
        assert [p["status"] for p in disbursed["payouts"]] == ["succeeded"]

        statement = tmp_path / "statement.csv"
        statement.write_text(
            "value_date,account_no,direction,amount,reference,counterparty,memo\n"
            f"2026-11-26,{demo['account']},C,100.03,CLRDEPLOY0001,China UnionPay clearing,T+1 settlement\n"
        )
        for command in (("close_business_day",), ("import_bank_statement", str(statement)),
                        ("collect_repayments",)):
            result = run("manage.py", *command, timeout=60)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
        repaid = client.get(f"/api/v1/advances/{advance['id']}")
        assert (repaid["status"], repaid["repaid_amount"], repaid["outstanding_amount"]) == (
            "repaid", "100.03", "0.00")
        scraped = requests.get(f"{base}/metrics", timeout=10).text
        assert 'engine_advances_requested_total{outcome="accepted",reason="none"} 1.0' in scraped, scraped[-2000:]
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited early: {logs[name].read_text()[-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        stop = time.monotonic() + 20
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, stop - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
