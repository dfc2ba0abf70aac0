"""The nightly jobs: repayment collection and the end-of-day chain, restartable chunk by chunk.

A run is a JobRun row holding (step, cursor). Each chunk of companies is one database transaction that
does the step's work for those companies AND moves the cursor, so a run killed at any point (SIGKILL
included) resumes after the last committed chunk and ends with the ledger of an uninterrupted run.

End of day, in order (every step set-based per chunk):
  repay     - the last repayment pass (reference repay:<date>:close:<company>)
  overdue   - advances due by the date and not fully repaid -> overdue; the companies' active lines frozen
  penalty   - penalty interest on overdue principal + fee, for the calendar days to the next business date
  unfreeze  - frozen lines configured with auto_unfreeze whose company has nothing overdue any more
  limits    - effective limits recomputed from the approved limit, flow and margin factors
  aging     - aging buckets of overdue advances, and the per-company aging snapshot for reports
  finish    - the business date moves to the next business day and reopens; the run succeeds
"""

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from config.ops import metrics
from funding.errors import EngineError
from funding.models import (
    ADVANCE_DUE_STATES,
    Advance,
    AdvanceStatus,
    AuditEvent,
    BusinessDay,
    Company,
    CreditLine,
    CreditLineStatus,
)
from funding.services.calendar import business_day_mark_closing, next_business_day
from funding.services.credit_lines import credit_line_freeze, credit_line_unfreeze_automatically
from ledger.models import Account, AccountKind
from ledger.services import account_get_or_create, credit, debit, ledger_post
from settlement.models import JobName, JobRun, JobRunStatus
from settlement.models.jobs import JOB_RUN_FAILABLE_STATES
from settlement.services.limits import credit_limits_recompute_chunk
from settlement.services.nightly_sql import advance_events_insert, nightly_lock_release, nightly_lock_try
from settlement.services.repayments import repayments_collect_chunk

CLOSE_STEPS = ["repay", "overdue", "penalty", "unfreeze", "limits", "aging", "finish"]
COLLECT_STEPS = ["repay", "finish"]
JOB_ACTOR = "job:close_business_day"

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


def _add(mapping: dict, key: str, value) -> None:
    if isinstance(value, Decimal):
        mapping[key] = str(Decimal(mapping.get(key, "0")) + value)
    else:
        mapping[key] = mapping.get(key, 0) + value


_chunks_this_process = 0


def _after_chunk_commit() -> None:
    """Test hook: SIGKILL this process after N committed chunks, to prove that resumption is exact."""
    global _chunks_this_process
    _chunks_this_process += 1
    limit = os.environ.get("NIGHTLY_TEST_SIGKILL_AFTER_CHUNKS")
    if limit and settings.DJANGO_ENV == "test" and _chunks_this_process >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


# --- steps: each gets a chunk of company ids and the run, and works inside the chunk's transaction


def _step_repay(ids: list[int], run: JobRun) -> None:
    pass_key = "close" if run.job == JobName.CLOSE_BUSINESS_DAY else f"run{run.sequence}"
    totals = repayments_collect_chunk(
        company_ids=ids, business_date=run.business_date, pass_key=pass_key, job_run=run
    )
    _add(run.counts, "repayments", totals.companies)
    _add(run.counts, "advances_paid", totals.advances)
    _add(run.counts, "advances_repaid", totals.advances_repaid)
    _add(run.amounts, "repaid", totals.amount)
    _add(run.amounts, "repaid_penalty", totals.penalty)
    _add(run.amounts, "repaid_fee", totals.fee)
    _add(run.amounts, "repaid_principal", totals.principal)


def _step_overdue(ids: list[int], run: JobRun) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS nightly_ids")
        cursor.execute("CREATE TEMP TABLE nightly_ids (id bigint PRIMARY KEY) ON COMMIT DROP")
        # A set-based transition disbursed|partially_disbursed -> overdue (the FSM's mark_overdue sources).
        cursor.execute(
            """
            WITH moved AS (
                UPDATE funding_advance v
                   SET status = %(overdue)s, overdue_since = %(d)s, version = v.version + 1,
                       updated_at = now()
                 WHERE v.company_id = ANY(%(ids)s) AND v.status = ANY(%(sources)s) AND v.due_date <= %(d)s
             RETURNING v.id)
            INSERT INTO nightly_ids SELECT id FROM moved
            """,
            {
                "overdue": AdvanceStatus.OVERDUE.value,
                "d": run.business_date,
                "ids": ids,
                "sources": [str(s) for s in ADVANCE_DUE_STATES],
            },
        )
        moved = cursor.rowcount
        cursor.execute("ANALYZE nightly_ids")
        if moved:
            advance_events_insert(
                event_type="advance.overdue", ids_sql="SELECT id FROM nightly_ids", params={}
            )
        cursor.execute("DROP TABLE nightly_ids")
    _add(run.counts, "advances_overdue", moved)
    overdue = Advance.objects.filter(company_id=OuterRef("company_id"), status=AdvanceStatus.OVERDUE)
    lines = CreditLine.objects.filter(company_id__in=ids, status=CreditLineStatus.ACTIVE).filter(
        Exists(overdue)
    )
    for line in lines.order_by("id"):
        credit_line_freeze(
            credit_line=line,
            actor=None,
            actor_label=JOB_ACTOR,
            reason=f"overdue advances at the close of {run.business_date.isoformat()}",
        )
        _add(run.counts, "lines_frozen", 1)


def _step_penalty(ids: list[int], run: JobRun) -> None:
    days = (run.next_business_date - run.business_date).days
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS nightly_pen")
        # Exact accrual at 8 places (PostgreSQL's round() on numeric is half away from zero = half-up here);
        # posted = the quantized running total less what was already posted, so rounding never drifts.
        cursor.execute(
            """
            CREATE TEMP TABLE nightly_pen ON COMMIT DROP AS
            SELECT s.*, round(s.prev_exact + s.exact, 2) - s.prev_posted AS posted
              FROM (
                SELECT v.id AS advance_id, v.company_id, b.base, l.penalty_rate,
                       round(b.base * l.penalty_rate * %(days)s, 8) AS exact,
                       v.penalty_accrued_exact AS prev_exact, v.penalty_accrued AS prev_posted
                  FROM funding_advance v
                  JOIN funding_creditline l ON l.id = v.credit_line_id
                 CROSS JOIN LATERAL (SELECT v.advanced_disbursed - v.principal_repaid + v.fee - v.fee_repaid
                                            AS base) b
                 WHERE v.company_id = ANY(%(ids)s) AND v.status = %(overdue)s
                   AND l.penalty_rate > 0 AND b.base > 0
              ) s
            """,
            {"days": days, "ids": ids, "overdue": AdvanceStatus.OVERDUE.value},
        )
        cursor.execute("ANALYZE nightly_pen")
        cursor.execute(
            """
            INSERT INTO settlement_penaltyaccrual
                   (advance_id, accrual_date, days, base, penalty_rate, amount_exact, posted, created_at)
            SELECT advance_id, %(d)s, %(days)s, base, penalty_rate, exact, posted, now()
              FROM nightly_pen WHERE exact > 0 ORDER BY advance_id
            """,
            {"d": run.business_date, "days": days},
        )
        accrued = cursor.rowcount
        cursor.execute(
            """
            UPDATE funding_advance v
               SET penalty_accrued_exact = v.penalty_accrued_exact + n.exact,
                   penalty_accrued = v.penalty_accrued + n.posted,
                   version = v.version + 1, updated_at = now()
              FROM nightly_pen n
             WHERE v.id = n.advance_id AND v.status = %(overdue)s AND n.exact > 0
            """,
            {"overdue": AdvanceStatus.OVERDUE.value},
        )
        if cursor.rowcount != accrued:
            raise JobError(f"penalty: {cursor.rowcount} advances updated, {accrued} accrued")
        cursor.execute(
            "SELECT c.code, sum(n.posted) FROM nightly_pen n JOIN funding_company c ON c.id = n.company_id "
            "GROUP BY c.code HAVING sum(n.posted) > 0 ORDER BY c.code"
        )
        per_company = cursor.fetchall()
        cursor.execute("DROP TABLE nightly_pen")
    if per_company:
        income = account_get_or_create(kind=AccountKind.PENALTY_INCOME)
        receivables = {
            a.owner: a
            for a in Account.objects.filter(
                kind=AccountKind.PENALTY_RECEIVABLE,
                owner__in=[row[0] for row in per_company],
                currency=settings.ENGINE_CURRENCY,
            )
        }
        for code, posted in per_company:
            ledger_post(
                kind="penalty.accrual",
                reference=f"penalty:{run.business_date.isoformat()}:{code}",
                business_date=run.business_date,
                description=f"penalty of {code}, {days} day(s) from {run.business_date.isoformat()}",
                legs=[debit(receivables[code], posted), credit(income, posted)],
            )
            _add(run.amounts, "penalty_accrued", posted)
    _add(run.counts, "advances_penalised", accrued)


def _step_unfreeze(ids: list[int], run: JobRun) -> None:
    overdue = Advance.objects.filter(company_id=OuterRef("company_id"), status=AdvanceStatus.OVERDUE)
    # Only a freeze this job made is undone by it: a line staff froze for another reason stays frozen.
    last_freeze_by = (
        AuditEvent.objects.filter(
            action="credit_line.frozen",
            object_type="funding.creditline",
            object_id=Cast(OuterRef("pk"), CharField()),
        )
        .order_by("-id")
        .values("actor_label")[:1]
    )
    lines = CreditLine.objects.filter(company_id__in=ids, status=CreditLineStatus.FROZEN, auto_unfreeze=True)
    lines = lines.annotate(frozen_by=Subquery(last_freeze_by)).filter(~Exists(overdue), frozen_by=JOB_ACTOR)
    for line in lines.order_by("id"):
        credit_line_unfreeze_automatically(
            credit_line=line,
            actor_label=JOB_ACTOR,
            reason=f"nothing overdue at the close of {run.business_date.isoformat()}",
        )
        _add(run.counts, "lines_unfrozen", 1)


def _step_limits(ids: list[int], run: JobRun) -> None:
    changed = credit_limits_recompute_chunk(
        company_ids=ids, business_date=run.business_date, actor_label=JOB_ACTOR
    )
    _add(run.counts, "limits_changed", changed)


def _step_aging(ids: list[int], run: JobRun) -> None:
    with connection.cursor() as cursor:
        # Days overdue as of the next business date: unpaid at the close of its due date = 1+ days late.
        cursor.execute(
            """
            UPDATE funding_advance v SET aging_bucket = b.bucket
              FROM (SELECT a.id, CASE WHEN %(next)s - a.due_date <= 3 THEN '1-3'
                                      WHEN %(next)s - a.due_date <= 7 THEN '4-7'
                                      WHEN %(next)s - a.due_date <= 30 THEN '8-30' ELSE '>30' END AS bucket
                      FROM funding_advance a
                     WHERE a.company_id = ANY(%(ids)s) AND a.status = %(overdue)s) b
             WHERE v.id = b.id AND v.aging_bucket <> b.bucket
            """,
            {"next": run.next_business_date, "ids": ids, "overdue": AdvanceStatus.OVERDUE.value},
        )
        cursor.execute(
            """
            INSERT INTO settlement_agingsnapshot (business_date, company_id, bucket, advances, outstanding)
            SELECT %(d)s, v.company_id, v.aging_bucket, count(*),
                   sum(v.advanced_disbursed - v.principal_repaid + v.fee - v.fee_repaid
                       + v.penalty_accrued - v.penalty_repaid)
              FROM funding_advance v
             WHERE v.company_id = ANY(%(ids)s) AND v.status = %(overdue)s
             GROUP BY v.company_id, v.aging_bucket
            """,
            {"d": run.business_date, "ids": ids, "overdue": AdvanceStatus.OVERDUE.value},
        )


STEP_FUNCTIONS = {
    "repay": _step_repay,
    "overdue": _step_overdue,
    "penalty": _step_penalty,
    "unfreeze": _step_unfreeze,
    "limits": _step_limits,
    "aging": _step_aging,
}


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
        if step != "finish":
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
            elif ids:
                STEP_FUNCTIONS[step](ids, run)
                run.cursor = ids[-1]
                run.chunks_done += 1
            else:
                run.step = steps[steps.index(step) + 1]
                run.cursor = 0
            run.save()
        if progress and step != "finish":
            done = Company.objects.filter(id__lte=run.cursor).count() if run.step == step else total
            progress(step, done, total)
        _after_chunk_commit()
    if run.finished_at:
        rows = sum(v for v in (run.counts or {}).values() if isinstance(v, int))
        metrics.job_observe(str(run.job), (run.finished_at - run.started_at).total_seconds(), rows=rows)
    return run


def _fail(run: JobRun, exc: BaseException) -> None:
    JobRun.objects.filter(pk=run.pk, status__in=JOB_RUN_FAILABLE_STATES).update(
        status=JobRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000], finished_at=timezone.now()
    )


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
                run.attempts += 1
                run.error = ""
                run.finished_at = None
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
                run.attempts += 1
                run.error = ""
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
        text += (
            f"; {c.get('advances_overdue', 0)} overdue, {c.get('lines_frozen', 0)} lines frozen, "
            f"penalty {a.get('penalty_accrued', '0.00')} on {c.get('advances_penalised', 0)} advances, "
            f"{c.get('lines_unfrozen', 0)} lines unfrozen, {c.get('limits_changed', 0)} limits changed; "
            f"next business date {run.next_business_date.isoformat() if run.next_business_date else '-'}"
        )
    return text


def job_run_resume(*, run_id: int, actor) -> str:
    """Staff rerun of a failed run: audited, then handed to the nightly worker once this commits.

    The worker resumes the run where it stopped (its chunks are recorded), so a rerun never repeats work.
    """
    from funding.services.audit import audit_record
    from settlement import tasks_nightly

    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=run_id)
        if run.status != JobRunStatus.FAILED:
            raise JobError(f"Only a failed run can be rerun; this one is {run.status}.")
        day = BusinessDay.objects.first()
        if day is None or run.business_date != day.current:
            raise JobError("Only a run of the current business date can be rerun.")
        task = (
            tasks_nightly.close_business_day
            if run.job == JobName.CLOSE_BUSINESS_DAY
            else tasks_nightly.collect_repayments
        )
        audit_record(action="job_run.rerun_requested", obj=run, actor=actor,
                     before={"status": run.status, "step": run.step, "error": run.error[:500]})
        transaction.on_commit(task.delay)
    return f"{run.job} of {run.business_date.isoformat()} handed to the nightly worker"
