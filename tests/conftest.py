import os

import pytest


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    return [
        f"database: PostgreSQL {db.get('HOST')}:{db.get('PORT')} (test database derived from {db.get('NAME')})",
        f"broker: {os.environ.get('CELERY_BROKER_URL', settings.CELERY_BROKER_URL)}",
    ]


@pytest.fixture(scope="session", autouse=True)
def test_settings():
    """The tests' own settings (config/settings.py has no branch for tests):
    - a fast password hasher;
    - no webhook delivery enqueued on commit: the tests call the delivery directly and need no broker (the
      tests that start engine processes say so in those processes' environment)."""
    from django.test import override_settings

    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        WEBHOOK_ENQUEUE_ON_COMMIT=False,
    ):
        yield


@pytest.fixture
def business_day(db):
    from tests.factories import calendar_and_business_date

    calendar_and_business_date()
