"""Celery tasks for the nightly jobs (scheduled by beat, see NIGHTLY_* settings); the work is in services.

Beat fires on every calendar day; a task runs only when the engine's business date is today (Asia/Shanghai)
or behind it (a missed close is caught up one date per run), never ahead of the calendar.
"""

import logging

from celery import shared_task
from django.utils import timezone

from funding.services.calendar import business_date_current
from settlement.services.nightly import (
    JobBusy,
    business_day_close,
    job_run_summary,
    repayments_collect_run,
)

logger = logging.getLogger(__name__)


def _today():
    """The calendar date in Asia/Shanghai (TIME_ZONE); one place, so tests can set the clock."""
    return timezone.localdate()


@shared_task(name="settlement.tasks_nightly.collect_repayments", acks_late=True)
def collect_repayments() -> str:
    if business_date_current() != _today():
        return "skipped: today is not the current business date"
    try:
        outcome = repayments_collect_run()
    except JobBusy:
        return "skipped: another nightly job is running"
    summary = job_run_summary(outcome.run)
    logger.info(summary)
    return summary


@shared_task(name="settlement.tasks_nightly.close_business_day", acks_late=True)
def close_business_day() -> str:
    if business_date_current() > _today():
        return "skipped: the current business date is ahead of the calendar"
    try:
        outcome = business_day_close()
    except JobBusy:
        return "skipped: another nightly job is running"
    summary = job_run_summary(outcome.run)
    logger.info(summary)
    return summary
