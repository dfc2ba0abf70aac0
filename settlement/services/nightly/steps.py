"""The steps of the nightly jobs. Each gets a chunk of company ids and the run, works inside the chunk's
transaction and adds its counts to the run. What changes advances and credit lines is funding's
(funding.services.overdue, funding.services.limits); collecting repayments is settlement's.

End of day, in order:
  repay     - the last repayment pass (reference repay:<date>:close:<company>)
  overdue   - advances due by the date and not fully repaid -> overdue; the companies' active lines frozen
  penalty   - penalty interest on overdue principal + fee, for the calendar days to the next business date
  unfreeze  - frozen lines configured with auto_unfreeze whose company has nothing overdue any more
  expire    - lines whose valid_to is before the next business date become expired (credit_line.expired)
  limits    - effective limits recomputed from the approved limit, flow and margin factors
  aging     - aging buckets of overdue advances, and the per-company aging snapshot for reports
  integrity - once, not per chunk: the integrity checks of the closed day (check_integrity), stored with the
              run; a failure raises the alert metric and the console banner but does not stop the day
  finish    - the business date moves to the next business day and reopens (the runner's last transaction)
"""

import logging
from collections.abc import Callable
from decimal import Decimal

from django.db import DatabaseError, transaction
from django.utils import timezone

from funding.services.credit_lines import credit_lines_expire_past_validity
from funding.services.limits import credit_limits_recompute_chunk
from funding.services.overdue import (
    advances_accrue_penalty,
    advances_age,
    advances_mark_overdue,
    credit_lines_freeze_overdue,
    credit_lines_unfreeze_cleared,
)
from settlement.models import IntegrityCheckRun, JobName, JobRun
from settlement.services.integrity import integrity_check_run
from settlement.services.repayments import repayments_collect_chunk

CLOSE_STEPS = ["repay", "overdue", "penalty", "unfreeze", "expire", "limits", "aging", "integrity", "finish"]
COLLECT_STEPS = ["repay", "finish"]
JOB_ACTOR = "job:close_business_day"
logger = logging.getLogger(__name__)


def _add(mapping: dict, key: str, value) -> None:
    if isinstance(value, Decimal):
        mapping[key] = str(Decimal(mapping.get(key, "0")) + value)
    else:
        mapping[key] = mapping.get(key, 0) + value


def step_repay(ids: list[int], run: JobRun) -> None:
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


def step_overdue(ids: list[int], run: JobRun) -> None:
    _add(run.counts, "advances_overdue", advances_mark_overdue(company_ids=ids, business_date=run.business_date))
    frozen = credit_lines_freeze_overdue(company_ids=ids, business_date=run.business_date, actor_label=JOB_ACTOR)
    _add(run.counts, "lines_frozen", frozen)


def step_penalty(ids: list[int], run: JobRun) -> None:
    totals = advances_accrue_penalty(
        company_ids=ids, business_date=run.business_date, next_business_date=run.next_business_date
    )
    if totals.posted:
        _add(run.amounts, "penalty_accrued", totals.posted)
    _add(run.counts, "advances_penalised", totals.advances)


def step_unfreeze(ids: list[int], run: JobRun) -> None:
    unfrozen = credit_lines_unfreeze_cleared(company_ids=ids, business_date=run.business_date, actor_label=JOB_ACTOR)
    _add(run.counts, "lines_unfrozen", unfrozen)


def step_expire(ids: list[int], run: JobRun) -> None:
    expired = credit_lines_expire_past_validity(company_ids=ids, next_business_date=run.next_business_date,
                                                actor_label=JOB_ACTOR)
    _add(run.counts, "lines_expired", expired)


def step_limits(ids: list[int], run: JobRun) -> None:
    changed = credit_limits_recompute_chunk(company_ids=ids, business_date=run.business_date, actor_label=JOB_ACTOR)
    _add(run.counts, "limits_changed", changed)


def step_aging(ids: list[int], run: JobRun) -> None:
    advances_age(company_ids=ids, business_date=run.business_date, next_business_date=run.next_business_date)


STEP_FUNCTIONS: dict[str, Callable[[list[int], JobRun], None]] = {
    "repay": step_repay,
    "overdue": step_overdue,
    "penalty": step_penalty,
    "unfreeze": step_unfreeze,
    "expire": step_expire,
    "limits": step_limits,
    "aging": step_aging,
}


def step_integrity(run: JobRun) -> None:
    """The books after the close, compared with themselves and the counters (a run resumed after this step
    committed does not check twice: the check is stored with the run, in the step's transaction).

    A check that cannot run (a database error) does not keep the next business day shut: it is stored as a
    failed check, which raises the same alert."""
    started_at = timezone.now()
    try:
        with transaction.atomic():
            check = integrity_check_run(
                triggered_by=JOB_ACTOR, business_date=run.business_date, job_run=run, started_at=started_at
            )
    except DatabaseError as exc:
        logger.exception("the integrity check of %s could not run", run.business_date)
        check = IntegrityCheckRun.objects.create(
            business_date=run.business_date, job_run=run, triggered_by=JOB_ACTOR, passed=False,
            problems=[{"check": "error", "subject": type(exc).__name__, "expected": "", "actual": "",
                       "message": f"the integrity check could not run: {type(exc).__name__}: {exc}"[:1000]}],
            started_at=started_at,
        )
    run.counts["integrity_problems"] = len(check.problems)


# Steps that run once for the whole date (not per chunk of companies), in the runner's transaction.
ONCE_STEP_FUNCTIONS: dict[str, Callable[[JobRun], None]] = {
    "integrity": step_integrity,
}
