from datetime import date

import pytest
from django.conf import settings

from funding.models import BusinessDay
from settlement import tasks_nightly
from settlement.models import JobRun

pytestmark = pytest.mark.django_db


def test_beat_schedule_and_queue_routing():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["collect-repayments-1000"]["task"] == "settlement.tasks_nightly.collect_repayments"
    assert schedule["collect-repayments-1600"]["task"] == "settlement.tasks_nightly.collect_repayments"
    assert schedule["close-business-day"]["schedule"].hour == {23}
    from config.celery import app

    for name in ("settlement.tasks_nightly.collect_repayments", "settlement.tasks_nightly.close_business_day"):
        assert app.amqp.router.route({}, name)["queue"].name == "nightly"


def test_tasks_run_only_on_the_current_business_date(business_day, monkeypatch):
    monkeypatch.setattr(tasks_nightly, "_today", lambda: date(2026, 11, 24))  # the clock is behind
    assert tasks_nightly.collect_repayments().startswith("skipped")
    assert tasks_nightly.close_business_day().startswith("skipped")
    assert JobRun.objects.count() == 0

    monkeypatch.setattr(tasks_nightly, "_today", lambda: date(2026, 11, 25))
    assert "collect_repayments 2026-11-25 #1 succeeded" in tasks_nightly.collect_repayments()
    assert "close_business_day 2026-11-25 #1 succeeded" in tasks_nightly.close_business_day()
    assert BusinessDay.objects.get().current == date(2026, 11, 26)
    # Beat firing again the same evening: the new business date is ahead of the calendar, nothing happens.
    assert tasks_nightly.close_business_day().startswith("skipped")
    assert BusinessDay.objects.get().current == date(2026, 11, 26)
