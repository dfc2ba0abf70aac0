"""Production settings refuse to start without what production needs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOOD = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "k" * 64,
    "DJANGO_ALLOWED_HOSTS": "bank.example",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://bank.example",
    "DJANGO_ADMIN_URL": "staff-7f3a/",
    "API_SECRET_ENCRYPTION_KEY": "aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVzISE=",
    "CACHE_URL": "redis://127.0.0.1:6379/13",
}


def load_settings(**overrides: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_POOL"))}
    env.update(GOOD)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, settings.CSRF_TRUSTED_ORIGINS, "
        "settings.DATABASES['default']['CONN_MAX_AGE'], "
        "settings.DATABASES['default']['OPTIONS'].get('pool'), settings.STAFF_OTP_REQUIRED)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True, text=True, timeout=60,
    )


def test_production_settings_load_when_complete():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True ['https://bank.example'] 600 None True"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_SECRET_KEY": "short"}, "at least 50 characters"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS must be set"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "'*' is refused"),
        ({"DJANGO_CSRF_TRUSTED_ORIGINS": None}, "DJANGO_CSRF_TRUSTED_ORIGINS must be set"),
        ({"DJANGO_CSRF_TRUSTED_ORIGINS": "http://bank.example"}, "https:// origins only"),
        ({"DJANGO_HSTS_SECONDS": "0"}, "DJANGO_HSTS_SECONDS must be at least 3600"),
        ({"CACHE_URL": None}, "CACHE_URL must be set"),
        ({"DISBURSEMENT_BATCH_SIZE": "0"}, "DISBURSEMENT_BATCH_SIZE must be at least 1"),
        ({"DISBURSEMENT_BATCH_SIZE": "ten"}, "DISBURSEMENT_BATCH_SIZE must be an integer, got 'ten'"),
    ],
)
def test_production_settings_refuse_to_start(overrides, message):
    result = load_settings(**overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_database_pool_forces_conn_max_age_zero():
    result = load_settings(DATABASE_POOL="true", DATABASE_CONN_MAX_AGE="600", DATABASE_POOL_MAX_SIZE="6")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("0 {'min_size': 1, 'max_size': 6, 'timeout': 10} True")


def test_amqp_broker_gets_quorum_queues_and_publisher_confirms():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CELERY_TASK_DEFAULT_QUEUE_TYPE, s.CELERY_BROKER_TRANSPORT_OPTIONS, "
        "sorted(q.name for q in s.CELERY_TASK_QUEUES), s.CELERY_TASK_QUEUES[0].queue_arguments)"
    )
    env = {**os.environ, "DJANGO_ENV": "test", "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "quorum {'confirm_publish': True} ['celery', 'disbursement', 'events', 'nightly', 'webhooks'] "
        "{'x-queue-type': 'quorum'}"
    )


def test_tasks_are_routed_to_their_queues():
    from config.celery import app

    router = app.amqp.router
    def queue(name: str) -> str:
        return router.route({}, name)["queue"].name

    assert queue("settlement.tasks.advance_dispatch") == "disbursement"
    assert queue("funding.tasks.webhook_deliver") == "webhooks"
    assert queue("settlement.tasks.nightly_close_business_day") == "nightly"
    assert queue("config.ops.tasks.retention_purge_task") == "nightly"
    assert queue("funding.tasks.something_else") == "events"
    assert queue("unknown.task") == "celery"


def test_the_filesystem_broker_keeps_all_its_folders_under_var():
    """kombu's default control folder is `control/` in the working directory: in a checkout, the repo root."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(sorted(s.CELERY_BROKER_TRANSPORT_OPTIONS.items()))"
    )
    env = {**os.environ, "DJANGO_ENV": "test", "CELERY_BROKER_URL": "filesystem://",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    queue_dir = ROOT / "var" / "celery"
    assert result.stdout.strip() == str(sorted({
        "control_folder": str(queue_dir / "control"),
        "data_folder_in": str(queue_dir / "queue"),
        "data_folder_out": str(queue_dir / "queue"),
        "processed_folder": str(queue_dir / "processed"),
        "store_processed": False,
    }.items()))


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("a-passphrase-somebody-typed", "1 of 1"),
        ("aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVzISE=,short", "2 of 2"),
        ("aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVz", "1 of 1"),  # 30 bytes
        ("aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVzISE", "1 of 1"),  # padding missing
        ("aGVyZS1pcy1hLXRlc3Qta2V5LW9m!TMyLWJ5dGVzISE=", "1 of 1"),  # not base64
        ("aGVyZS1pcy1hLXRlc3Qta2V5LW9mLTMyLWJ5dGVzISE=\u00e9", "1 of 1"),
    ],
)
def test_production_refuses_a_key_that_is_not_a_fernet_key(value, number):
    result = load_settings(API_SECRET_ENCRYPTION_KEY=value)
    assert result.returncode != 0
    assert f"API_SECRET_ENCRYPTION_KEY: key {number} is not a Fernet key" in result.stderr
    assert "Fernet.generate_key()" in result.stderr
    for part in value.split(","):
        assert part not in result.stderr  # the key itself is never printed


def test_production_accepts_real_fernet_keys_in_rotation():
    from cryptography.fernet import Fernet

    keys = ",".join(Fernet.generate_key().decode() for _ in range(2))
    result = load_settings(API_SECRET_ENCRYPTION_KEY=keys)
    assert result.returncode == 0, result.stderr
