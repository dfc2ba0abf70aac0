import pytest
from django.test import override_settings

from funding.models import BusinessDay, CalendarYear


@pytest.fixture
def broker_answers(settings):
    """The tests run with the broker `make test` picked (it answered); nothing else to arrange."""
    return settings.CELERY_BROKER_URL


def test_healthz_answers_without_touching_anything(client):
    # No database access is allowed in this test: a query would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_ok_when_every_dependency_answers(client, business_day, broker_answers):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": "ok", "migrations": "ok", "broker": "ok", "cache": "ok", "business_date": "ok",
            "calendar": "ok",
        },
        "warnings": [],
    }


# Only what blocks serving (the database, migrations) fails readiness; the rest is reported as a warning.


def test_an_unreachable_broker_is_a_warning_and_leaks_nothing(client, business_day):
    with override_settings(
        CELERY_BROKER_URL="amqp://guest:secret-password@127.0.0.1:1//",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
        READINESS_BROKER_TIMEOUT=1,
    ):
        response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["warnings"] == ["broker"]
    assert body["checks"]["broker"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["calendar"] == "ok"
    assert "secret-password" not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


def test_an_unreachable_redis_cache_is_a_warning(client, business_day):
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:1/0",
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    with override_settings(CACHES=caches):  # Django's setting_changed signal rebuilds the cache handler
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["warnings"] == ["cache"]
    assert response.json()["checks"]["cache"] == "fail"


@pytest.mark.django_db
def test_no_business_date_is_a_warning(client):
    assert not BusinessDay.objects.exists()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["business_date"] == "fail"
    assert response.json()["checks"]["calendar"] == "fail"
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["warnings"] == ["business_date", "calendar"]


def test_readyz_stays_ready_when_next_years_calendar_is_missing(client, business_day):
    # 2026-12-31 is the last business day of the only published year: the next one cannot be known. The
    # engine serves on (advances maturing in 2027 are refused, staff are warned): issue 14 changed this from 503.
    BusinessDay.objects.update(current="2026-12-31")
    assert not CalendarYear.objects.filter(year=2027).exists()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["business_date"] == "ok"
    assert response.json()["checks"]["calendar"] == "ok"


def test_an_unpublished_year_of_the_business_date_is_a_warning(client, business_day):
    CalendarYear.objects.filter(year=2026).update(published=False)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["calendar"] == "fail"
    assert (response.json()["status"], response.json()["warnings"]) == ("degraded", ["calendar"])


def test_unapplied_migrations_fail_readiness(client, business_day, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    from config.ops import health

    monkeypatch.setattr(health, "_migrations_applied", False)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("a migration", False)])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["migrations"] == "fail"
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["warnings"] == []


def test_a_database_that_does_not_answer_fails_readiness(client, monkeypatch):
    from config.ops import health

    def down():
        raise OSError("connection refused")

    monkeypatch.setattr(health, "_check_database", down)
    monkeypatch.setattr(health, "_check_broker", lambda: None)
    monkeypatch.setattr(health, "_check_cache", lambda: None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "fail", "migrations": "fail", "broker": "ok", "cache": "ok", "business_date": "fail",
        "calendar": "fail",
    }
    assert "connection refused" not in response.content.decode()


@override_settings(DJANGO_ENV="production", SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["bank.example"])
def test_probes_by_ip_over_plain_http_are_neither_redirected_nor_refused(client):
    # A load balancer probes 10.x.x.x:8000 over HTTP; ALLOWED_HOSTS and the HTTPS redirect must not apply.
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    other = client.get("/admin/", HTTP_HOST="10.1.2.3:8000")
    assert other.status_code == 400
