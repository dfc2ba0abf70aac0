"""Stale django-celery-beat entries (no longer in the code's schedule) are disabled at beat start."""

import io
import json

import pytest
from celery import signals
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from funding.models import AuditEvent

pytestmark = pytest.mark.django_db


def _task(name: str, task: str, *, enabled: bool = True) -> PeriodicTask:
    every, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task=task, interval=every, enabled=enabled)


@pytest.fixture
def table():
    PeriodicTask.objects.all().delete()
    _task("api-prune", "funding.api.tasks.api_prune")  # in the code's schedule
    _task("collect-repayments-0930", "settlement.tasks_nightly.collect_repayments")  # a time no longer set
    _task("old-webhooks-job", "funding.api.tasks.gone")  # renamed away long ago
    _task("celery.backend_cleanup", "celery.backend_cleanup")  # Celery's own
    _task("already-off", "x.y", enabled=False)


def _enabled() -> list[str]:
    return sorted(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True))


def test_the_command_disables_what_the_code_no_longer_schedules_once(table):
    out = io.StringIO()
    call_command("beat_schedule_prune", stdout=out)
    assert out.getvalue().strip() == (
        "Disabled 2 stale beat entries: collect-repayments-0930, old-webhooks-job; 2 enabled."
    )
    assert _enabled() == ["api-prune", "celery.backend_cleanup"]
    assert PeriodicTask.objects.filter(name="already-off", enabled=False).exists()  # left as it was
    audited = AuditEvent.objects.filter(action="beat.entry_disabled")
    assert sorted(a.after["enabled"] is False and a.before["task"] for a in audited) == [
        "funding.api.tasks.gone", "settlement.tasks_nightly.collect_repayments"
    ]
    out = io.StringIO()
    call_command("beat_schedule_prune", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"disabled": [], "enabled": 2}
    assert AuditEvent.objects.filter(action="beat.entry_disabled").count() == 2


@pytest.mark.django_db(transaction=True)  # the scheduler closes and reopens database connections
def test_beat_start_prunes_before_the_database_scheduler_reads_the_table(table):
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery import app

    signals.beat_init.send(sender=None)
    scheduler = DatabaseScheduler(app=app)
    names = set(scheduler.schedule)
    assert "old-webhooks-job" not in names and "collect-repayments-0930" not in names
    # The scheduler itself (re)installed the code's schedule, every entry of it enabled.
    from django.conf import settings

    assert set(settings.CELERY_BEAT_SCHEDULE) <= names
    assert "collect-repayments-1000" in names
