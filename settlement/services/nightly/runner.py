"""The nightly job runner: repayment collection and the end-of-day chain, restartable chunk by chunk.

A run is a JobRun row holding (step, cursor). Each chunk of companies is one database transaction that
does the step's work for those companies AND moves the cursor, so a run killed at any point (SIGKILL
included) resumes after the last committed chunk and ends with the ledger of an uninterrupted run.
The steps are in settlement.services.nightly.steps.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.ops import metrics
from funding.errors import EngineError
from funding.models import BusinessDay, Company
from funding.services.audit import audit_record
from funding.services.calendar import business_day_mark_closing, next_business_day
from settlement.models import JobName, JobRun, JobRunStatus
from settlement.models.jobs import JOB_RUN_FAILABLE_STATES
from settlement.services.nightly.steps import CLOSE_STEPS, COLLECT_STEPS, ONCE_STEP_FUNCTIONS, STEP_FUNCTIONS

# One session-level advisory lock for collect_repayments and close_business_day: never both at once.
NIGHTLY_LOCK_KEY = 0x4E494748  # "NIGH"
# A staff rerun hands the run to the nightly worker by task name (services never import task modules).
RERUN_TASKS = {
    JobName.CLOSE_BUSINESS_DAY: "settlement.tasks_nightly.close_business_day",
    JobName.COLLECT_REPAYMENTS: "settlement.tasks_nightly.collect_repayments",
}

# progress(step, companies_done_in_step, companies_total)
Progress = Callable[[str, int, int], None]


class JobError(EngineError):
    code = "job_error"
    default_message = "The job cannot run."


class JobBusy(JobError):
    code = "job_busy"
    default_message = "Another nightly job is running."


@dataclass
class JobOutcome:
    run: JobRun
    changed: bool  # False: the date was already done and nothing was touched


def nightly_lock_try() -> bool:
    """Held across the job's chunk transactions; freed by PostgreSQL if the process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def nightly_lock_release() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [NIGHTLY_LOCK_KEY])


def _finish(run: JobRun) -> None:
    """The last transaction of a run: for the close, the next business day opens with it."""
    if run.job == JobName.CLOSE_BUSINESS_DAY:
        updated = BusinessDay.objects.filter(current=run.business_date).update(
            current=run.next_business_date, closing=False, updated_at=timezone.now()
        )
        if updated != 1:
            raise JobError(f"the business date is no longer {run.business_date.isoformat()}")
    run.succeed()
    run.step = "done"
    run.cursor = 0
    run.finished_at = timezone.now()


def _run_steps(run: JobRun, steps: list[str], *, chunk_size: int, progress: Progress | None) -> JobRun:
    total = Company.objects.count()
    while run.step != "done":
        step = run.step
        ids = []
        if step != "finish" and step not in ONCE_STEP_FUNCTIONS:
            ids = list(
                Company.objects.filter(id__gt=run.cursor)
                .order_by("id")
                .values_list("id", flat=True)[:chunk_size]
            )
        with transaction.atomic():
            run = JobRun.objects.select_for_update().get(pk=run.pk)
            if run.step != step:
                raise JobError("the run was changed by someone else")
            if step == "finish":
                _finish(run)
            elif step in ONCE_STEP_FUNCTIONS:
                ONCE_STEP_FUNCTIONS[step](run)
                run.step = steps[steps.index(step) + 1]
                run.cursor = 0
            elif ids:
                STEP_FUNCTIONS[step](ids, run)
                run.cursor = ids[-1]
                run.chunks_done += 1
            else:
                run.step = steps[steps.index(step) + 1]
                run.cursor = 0
            run.save()
        if progress and step != "finish" and step not in ONCE_STEP_FUNCTIONS:
            done = Company.objects.filter(id__lte=run.cursor).count() if run.step == step else total
            progress(step, done, total)
    if run.finished_at:
        rows = sum(v for v in (run.counts or {}).values() if isinstance(v, int))
        metrics.job_observe(str(run.job), (run.finished_at - run.started_at).total_seconds(), rows=rows)
    return run


def _fail(run: JobRun, exc: BaseException) -> None:
    """Record the failure through JobRun.fail on the stored row (the failed chunk's transaction rolled back,
    so the row, not the object in hand, says whether the run is still running)."""
    with transaction.atomic():
        stored = JobRun.objects.select_for_update().filter(pk=run.pk, status__in=JOB_RUN_FAILABLE_STATES).first()
        if stored is not None:
            stored.fail(exc)
            stored.save(update_fields=["status", "error", "finished_at"])


def _chunk_size(chunk_size: int | None) -> int:
    return max(1, chunk_size or settings.NIGHTLY_CHUNK_COMPANIES)


def business_day_close(
    *, business_date: date | None = None, chunk_size: int | None = None, progress: Progress | None = None
) -> JobOutcome:
    """Close the current business date (or resume its interrupted close) and open the next business day.

    With `business_date` given: a date already closed returns at once, changing nothing; any other date
    than the current one is refused.
    """
    if not nightly_lock_try():
        raise JobBusy()
    try:
        day = BusinessDay.objects.first()
        if day is None:
            raise JobError("The business date has not been set.")
        if business_date is not None and business_date != day.current:
            done = JobRun.objects.filter(
                job=JobName.CLOSE_BUSINESS_DAY, business_date=business_date, status=JobRunStatus.SUCCEEDED
            ).first()
            if done:
                return JobOutcome(run=done, changed=False)
            raise JobError(
                f"The current business date is {day.current.isoformat()}, not {business_date.isoformat()}."
            )
        with transaction.atomic():
            run = (
                JobRun.objects.select_for_update()
                .filter(job=JobName.CLOSE_BUSINESS_DAY, business_date=day.current)
                .first()
            )
            if run is None:
                # Refuses (calendar_unavailable) before anything changes if the next business day is unknown.
                next_date = next_business_day(day.current)
                run = JobRun.objects.create(
                    job=JobName.CLOSE_BUSINESS_DAY,
                    business_date=day.current,
                    next_business_date=next_date,
                    step=CLOSE_STEPS[0],
                )
                # From here new advances are refused with business_day_closed (once those in flight are done).
                business_day_mark_closing(day=day)
            elif run.status == JobRunStatus.SUCCEEDED:
                return JobOutcome(run=run, changed=False)
            else:
                run.resume()
                run.save(update_fields=["status", "attempts", "error", "finished_at"])
        try:
            run = _run_steps(run, CLOSE_STEPS, chunk_size=_chunk_size(chunk_size), progress=progress)
        except BaseException as exc:
            _fail(run, exc)
            raise
        return JobOutcome(run=run, changed=True)
    finally:
        nightly_lock_release()


def repayments_collect_run(*, chunk_size: int | None = None, progress: Progress | None = None) -> JobOutcome:
    """One repayment pass over all companies for the current business date (resumes an interrupted pass)."""
    if not nightly_lock_try():
        raise JobBusy()
    try:
        day = BusinessDay.objects.first()
        if day is None:
            raise JobError("The business date has not been set.")
        if (
            day.closing
            or JobRun.objects.filter(job=JobName.CLOSE_BUSINESS_DAY, business_date=day.current)
            .exclude(status=JobRunStatus.SUCCEEDED)
            .exists()
        ):
            raise JobError(
                f"The close of {day.current.isoformat()} is in progress; run close_business_day to "
                "finish it (it makes the last repayment pass)."
            )
        with transaction.atomic():
            runs = (
                JobRun.objects.select_for_update()
                .filter(job=JobName.COLLECT_REPAYMENTS, business_date=day.current)
                .order_by("-sequence")
            )
            last = runs.first()
            if last is not None and last.status != JobRunStatus.SUCCEEDED:
                run = last
                run.resume()
                run.save(update_fields=["status", "attempts", "error"])
            else:
                run = JobRun.objects.create(
                    job=JobName.COLLECT_REPAYMENTS,
                    business_date=day.current,
                    sequence=(last.sequence + 1) if last else 1,
                    step=COLLECT_STEPS[0],
                )
        try:
            run = _run_steps(run, COLLECT_STEPS, chunk_size=_chunk_size(chunk_size), progress=progress)
        except BaseException as exc:
            _fail(run, exc)
            raise
        return JobOutcome(run=run, changed=True)
    finally:
        nightly_lock_release()


def job_run_summary(run: JobRun) -> str:
    c, a = run.counts, run.amounts
    text = (
        f"{run.job} {run.business_date.isoformat()} #{run.sequence} {run.status}: "
        f"{c.get('repayments', 0)} repayments of {a.get('repaid', '0.00')} "
        f"({c.get('advances_repaid', 0)} advances repaid in full, {c.get('advances_paid', 0)} paid)"
    )
    if run.job == JobName.CLOSE_BUSINESS_DAY:
        if "integrity_problems" not in c:
            integrity = ""
        elif not c["integrity_problems"]:
            integrity = "integrity check passed; "
        else:
            integrity = f"integrity check FAILED ({c['integrity_problems']} problem(s), see check_integrity); "
        text += (
            f"; {c.get('advances_overdue', 0)} overdue, {c.get('lines_frozen', 0)} lines frozen, "
            f"penalty {a.get('penalty_accrued', '0.00')} on {c.get('advances_penalised', 0)} advances, "
            f"{c.get('lines_unfrozen', 0)} lines unfrozen, {c.get('lines_expired', 0)} lines expired, "
            f"{c.get('limits_changed', 0)} limits changed; {integrity}"
            f"next business date {run.next_business_date.isoformat() if run.next_business_date else '-'}"
        )
    return text


def job_run_as_json(run: JobRun, *, changed: bool = True) -> dict:
    """The run as the commands' --json prints it: counts as integers, amounts as strings with two decimals."""
    return {
        "job": run.job,
        "business_date": run.business_date.isoformat(),
        "sequence": run.sequence,
        "status": run.status,
        "changed": changed,
        "counts": dict(run.counts),
        "amounts": dict(run.amounts),
        "next_business_date": run.next_business_date.isoformat() if run.next_business_date else None,
    }


def job_run_resume(*, run_id: int, actor) -> str:
    """Staff rerun of a failed run: audited, then handed to the nightly worker once this commits.

    The worker resumes the run where it stopped (its chunks are recorded), so a rerun never repeats work.
    """
    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=run_id)
        if run.status != JobRunStatus.FAILED:
            raise JobError(f"Only a failed run can be rerun; this one is {run.status}.")
        day = BusinessDay.objects.first()
        if day is None or run.business_date != day.current:
            raise JobError("Only a run of the current business date can be rerun.")
        task = RERUN_TASKS[run.job]
        audit_record(action="job_run.rerun_requested", obj=run, actor=actor,
                     before={"status": run.status, "step": run.step, "error": run.error[:500]})
        transaction.on_commit(lambda: current_app.send_task(task))
    return f"{run.job} of {run.business_date.isoformat()} handed to the nightly worker"
