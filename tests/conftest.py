import os

import pytest


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    return [
        f"database: PostgreSQL {db.get('HOST')}:{db.get('PORT')} (test database derived from {db.get('NAME')})",
        f"broker: {os.environ.get('CELERY_BROKER_URL', settings.CELERY_BROKER_URL)}",
    ]


@pytest.fixture
def business_day(db):
    from tests.factories import calendar_and_business_date

    calendar_and_business_date()
