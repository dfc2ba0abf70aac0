"""The nightly jobs: the runner (restartable job runs) and its steps."""

from settlement.services.nightly.runner import (
    JobBusy,
    JobError,
    JobOutcome,
    business_day_close,
    job_run_as_json,
    job_run_resume,
    job_run_summary,
    repayments_collect_run,
)
from settlement.services.nightly.steps import CLOSE_STEPS, COLLECT_STEPS, JOB_ACTOR

__all__ = [
    "CLOSE_STEPS",
    "COLLECT_STEPS",
    "JOB_ACTOR",
    "JobBusy",
    "JobError",
    "JobOutcome",
    "business_day_close",
    "job_run_as_json",
    "job_run_resume",
    "job_run_summary",
    "repayments_collect_run",
]
