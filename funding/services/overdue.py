"""End of day for what a company owes: advances made overdue, penalty interest accrued, aging buckets, and the
credit lines frozen or unfrozen with them. Set-based per chunk of companies; each function runs inside the
caller's chunk transaction (settlement's job runner), so a chunk's work and its cursor commit together."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import CharField, Exists, OuterRef, Subquery
from django.db.models.functions import Cast

from funding.models import ADVANCE_DUE_STATES, Advance, AdvanceStatus, AuditEvent, CreditLine, CreditLineStatus
from funding.selectors import PENALTY_BASE_PARTS, aging_bucket_sql, outstanding_sql
from funding.services.credit_lines import credit_line_freeze, credit_line_unfreeze_automatically
from funding.services.events import advance_events_insert
from ledger.models import Account, AccountKind
from ledger.services import account_get_or_create, credit, debit, ledger_post


class OverdueError(Exception):
    """A set-based step changed other rows than it computed: a concurrent change, never a business outcome."""


def advances_mark_overdue(*, company_ids: list[int], business_date: date) -> int:
    """Advances due by `business_date` and not repaid become overdue (one `advance.overdue` event each).

    Including a `disbursing` advance that owes what its succeeded payouts paid while another payout's outcome
    is still unknown (contract 1.7); one that owes nothing yet (no payout succeeded) is not overdue."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS nightly_ids")
        cursor.execute("CREATE TEMP TABLE nightly_ids (id bigint PRIMARY KEY) ON COMMIT DROP")
        # A set-based transition disbursed|partially_disbursed|disbursing -> overdue (mark_overdue's sources).
        cursor.execute(
            f"""
            WITH moved AS (
                UPDATE funding_advance v
                   SET status = %(overdue)s, overdue_since = %(d)s, version = v.version + 1,
                       updated_at = now()
                 WHERE v.company_id = ANY(%(ids)s) AND v.status = ANY(%(sources)s) AND v.due_date <= %(d)s
                   AND {outstanding_sql("v")} > 0
             RETURNING v.id)
            INSERT INTO nightly_ids SELECT id FROM moved
            """,
            {
                "overdue": AdvanceStatus.OVERDUE.value,
                "d": business_date,
                "ids": company_ids,
                "sources": [str(s) for s in ADVANCE_DUE_STATES],
            },
        )
        moved = cursor.rowcount
        cursor.execute("ANALYZE nightly_ids")
        if moved:
            advance_events_insert(event_type="advance.overdue", ids_sql="SELECT id FROM nightly_ids", params={})
        cursor.execute("DROP TABLE nightly_ids")
    return moved


def credit_lines_freeze_overdue(*, company_ids: list[int], business_date: date, actor_label: str) -> int:
    """Freeze the active lines of companies with an overdue advance. Returns how many were frozen."""
    overdue = Advance.objects.filter(company_id=OuterRef("company_id"), status=AdvanceStatus.OVERDUE)
    lines = CreditLine.objects.filter(company_id__in=company_ids, status=CreditLineStatus.ACTIVE).filter(
        Exists(overdue)
    )
    frozen = 0
    for line in lines.order_by("id"):
        credit_line_freeze(
            credit_line=line,
            actor=None,
            actor_label=actor_label,
            reason=f"overdue advances at the close of {business_date.isoformat()}",
        )
        frozen += 1
    return frozen


@dataclass
class PenaltyTotals:
    advances: int = 0
    posted: Decimal = Decimal("0.00")


def advances_accrue_penalty(*, company_ids: list[int], business_date: date, next_business_date: date) -> PenaltyTotals:
    """Penalty interest on overdue principal + fee for the calendar days to the next business date.

    Exact accrual at 8 places; posted = the quantized running total less what was already posted, so rounding
    never drifts. One journal per company (reference penalty:<date>:<company>), one accrual row per advance
    and date (unique): a second run for the date fails instead of charging twice.
    """
    days = (next_business_date - business_date).days
    totals = PenaltyTotals()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS nightly_pen")
        # PostgreSQL's round() on numeric is half away from zero = half-up for these positive amounts.
        cursor.execute(
            f"""
            CREATE TEMP TABLE nightly_pen ON COMMIT DROP AS
            SELECT s.*, round(s.prev_exact + s.exact, 2) - s.prev_posted AS posted
              FROM (
                SELECT v.id AS advance_id, v.company_id, b.base, l.penalty_rate,
                       round(b.base * l.penalty_rate * %(days)s, 8) AS exact,
                       v.penalty_accrued_exact AS prev_exact, v.penalty_accrued AS prev_posted
                  FROM funding_advance v
                  JOIN funding_creditline l ON l.id = v.credit_line_id
                 CROSS JOIN LATERAL (SELECT {outstanding_sql("v", parts=PENALTY_BASE_PARTS)} AS base) b
                 WHERE v.company_id = ANY(%(ids)s) AND v.status = %(overdue)s
                   AND l.penalty_rate > 0 AND b.base > 0
              ) s
            """,
            {"days": days, "ids": company_ids, "overdue": AdvanceStatus.OVERDUE.value},
        )
        cursor.execute("ANALYZE nightly_pen")
        cursor.execute(
            """
            INSERT INTO funding_penaltyaccrual
                   (advance_id, accrual_date, days, base, penalty_rate, amount_exact, posted, created_at)
            SELECT advance_id, %(d)s, %(days)s, base, penalty_rate, exact, posted, now()
              FROM nightly_pen WHERE exact > 0 ORDER BY advance_id
            """,
            {"d": business_date, "days": days},
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
            raise OverdueError(f"penalty: {cursor.rowcount} advances updated, {accrued} accrued")
        cursor.execute(
            "SELECT c.code, sum(n.posted) FROM nightly_pen n JOIN funding_company c ON c.id = n.company_id "
            "GROUP BY c.code HAVING sum(n.posted) > 0 ORDER BY c.code"
        )
        per_company = cursor.fetchall()
        cursor.execute("DROP TABLE nightly_pen")
    totals.advances = accrued
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
                reference=f"penalty:{business_date.isoformat()}:{code}",
                business_date=business_date,
                description=f"penalty of {code}, {days} day(s) from {business_date.isoformat()}",
                legs=[debit(receivables[code], posted), credit(income, posted)],
            )
            totals.posted += posted
    return totals


def credit_lines_unfreeze_cleared(*, company_ids: list[int], business_date: date, actor_label: str) -> int:
    """Unfreeze lines configured with auto_unfreeze whose company has nothing overdue any more, when the freeze
    was this job's (a line staff froze for another reason stays frozen). Returns how many were unfrozen."""
    overdue = Advance.objects.filter(company_id=OuterRef("company_id"), status=AdvanceStatus.OVERDUE)
    last_freeze_by = (
        AuditEvent.objects.filter(
            action="credit_line.frozen",
            object_type="funding.creditline",
            object_id=Cast(OuterRef("pk"), CharField()),
        )
        .order_by("-id")
        .values("actor_label")[:1]
    )
    lines = CreditLine.objects.filter(company_id__in=company_ids, status=CreditLineStatus.FROZEN, auto_unfreeze=True)
    lines = lines.annotate(frozen_by=Subquery(last_freeze_by)).filter(~Exists(overdue), frozen_by=actor_label)
    unfrozen = 0
    for line in lines.order_by("id"):
        credit_line_unfreeze_automatically(
            credit_line=line,
            actor_label=actor_label,
            reason=f"nothing overdue at the close of {business_date.isoformat()}",
        )
        unfrozen += 1
    return unfrozen


def advances_age(*, company_ids: list[int], business_date: date, next_business_date: date) -> None:
    """Aging buckets of overdue advances as of the next business date, and the per-company aging snapshot."""
    with connection.cursor() as cursor:
        # Days overdue as of the next business date: unpaid at the close of its due date = 1+ days late.
        cursor.execute(
            f"""
            UPDATE funding_advance v SET aging_bucket = b.bucket
              FROM (SELECT a.id, {aging_bucket_sql("(%(next)s - a.due_date)")} AS bucket
                      FROM funding_advance a
                     WHERE a.company_id = ANY(%(ids)s) AND a.status = %(overdue)s) b
             WHERE v.id = b.id AND v.aging_bucket <> b.bucket
            """,
            {"next": next_business_date, "ids": company_ids, "overdue": AdvanceStatus.OVERDUE.value},
        )
        cursor.execute(
            f"""
            INSERT INTO funding_agingsnapshot (business_date, company_id, bucket, advances, outstanding)
            SELECT %(d)s, v.company_id, v.aging_bucket, count(*),
                   sum({outstanding_sql("v")})
              FROM funding_advance v
             WHERE v.company_id = ANY(%(ids)s) AND v.status = %(overdue)s
             GROUP BY v.company_id, v.aging_bucket
            """,
            {"d": business_date, "ids": company_ids, "overdue": AdvanceStatus.OVERDUE.value},
        )
