"""Effective limits: the minimum of the approved limit and each configured factor (contract 1.7).

- flow: flow_multiple x the average daily credits to the settlement account (bank statement credits by
  value date) over the last `flow_window_days` business days up to `as_of`;
- margin: margin_multiple x the margin-deposit balance.

Computed when a line is approved, whenever an approved change touches the limit or a factor's terms, and at
every end of day. Each computation is kept with its inputs (LimitFactorSnapshot, append-only) and the latest
factors are on the line (CreditLine.limit_factors, shown by GET /api/v1/credit-line). A limit below current
usage blocks new holds and touches nothing already disbursed (funding.services.line_counters.line_set_limits).
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum

from funding.models import (
    BankStatementLine,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
    LimitFactorSnapshot,
    LimitFactorTrigger,
    StatementDirection,
)
from funding.representations import amount_str, decimal_str
from funding.selectors import business_days_up_to
from funding.services.audit import audit_record
from funding.services.line_counters import line_set_limits
from funding.services.line_events import credit_line_emit_event
from funding.services.thresholds import credit_line_thresholds_check
from ledger.models import Account, AccountKind
from ledger.money import money

LIMITED_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]
# The terms whose change recomputes the effective limit at approval.
LIMIT_TERMS = ("approved_limit", "flow_multiple", "flow_window_days", "margin_multiple")


def limit_factors_compute(
    *, line: CreditLine, business_date: date, flow_credits: dict[date, Decimal], margin_balance: Decimal
) -> tuple[Decimal, list[dict]]:
    """(effective limit, factors) of a line; `flow_credits`: value date -> settlement-account credits.

    Each factor carries its inputs: {"factor": "flow", "value": "900000.00", "multiple": "1.50",
    "base": "600000.00", "as_of": "2026-11-24", ...}; the effective limit is the minimum of the values.
    """
    values = [line.approved_limit]
    factors: list[dict] = [{"factor": "approved_limit", "value": amount_str(line.approved_limit)}]
    if line.flow_multiple is not None:
        window = business_days_up_to(business_date, line.flow_window_days)
        total = sum((flow_credits.get(d, Decimal(0)) for d in window), Decimal(0))
        # Divide by the full window even when the history is shorter: a new company earns its limit.
        average = money(total / line.flow_window_days) if line.flow_window_days else Decimal("0.00")
        value = money(line.flow_multiple * average)
        values.append(value)
        factors.append(
            {
                "factor": "flow",
                "value": amount_str(value),
                "multiple": decimal_str(line.flow_multiple),
                "base": amount_str(average),
                "as_of": business_date.isoformat(),
                "window_business_days": line.flow_window_days,
                "window_from": window[-1].isoformat() if window else None,
                "window_to": window[0].isoformat() if window else None,
            }
        )
    if line.margin_multiple is not None:
        balance = max(margin_balance, Decimal("0.00"))
        value = money(line.margin_multiple * balance)
        values.append(value)
        factors.append(
            {
                "factor": "margin",
                "value": amount_str(value),
                "multiple": decimal_str(line.margin_multiple),
                "base": amount_str(balance),
                "as_of": business_date.isoformat(),
            }
        )
    return min(values), factors


def _factor_inputs(lines: list[CreditLine], business_date: date) -> tuple[dict, dict]:
    """Per line id: (flow credits by value date, margin balance), read for all the lines at once."""
    codes = [line.company.code for line in lines]
    accounts = {
        (a.owner, a.kind): a
        for a in Account.objects.filter(
            owner__in=codes,
            currency=settings.ENGINE_CURRENCY,
            kind__in=[AccountKind.SETTLEMENT, AccountKind.MARGIN],
        )
    }
    longest = max((line.flow_window_days for line in lines if line.flow_multiple is not None), default=0)
    by_account: dict[int, dict[date, Decimal]] = defaultdict(dict)
    if longest:
        window = business_days_up_to(business_date, longest)
        settlement_ids = [a.id for (owner, kind), a in accounts.items() if kind == AccountKind.SETTLEMENT]
        if window:
            rows = (
                BankStatementLine.objects.filter(
                    Q(account_id__in=settlement_ids),
                    direction=StatementDirection.CREDIT,
                    value_date__gte=window[-1],
                    value_date__lte=business_date,
                )
                .values("account_id", "value_date")
                .annotate(total=Sum("amount"))
                .order_by()
            )
            for row in rows:
                by_account[row["account_id"]][row["value_date"]] = row["total"]
    flow, margin = {}, {}
    for line in lines:
        settlement = accounts.get((line.company.code, AccountKind.SETTLEMENT))
        deposit = accounts.get((line.company.code, AccountKind.MARGIN))
        flow[line.pk] = by_account.get(settlement.id, {}) if settlement else {}
        margin[line.pk] = deposit.balance if deposit else Decimal("0.00")
    return flow, margin


def _apply(
    line: CreditLine, *, effective: Decimal, factors: list[dict], business_date: date, trigger: str,
    actor_label: str, change_request: CreditLineChangeRequest | None,
) -> LimitFactorSnapshot:
    """Store the factors and their snapshot; set the limits. The caller has locked the line."""
    CreditLine.objects.filter(pk=line.pk).update(limit_factors=factors, limit_factors_date=business_date)
    line_set_limits(line_id=line.pk, approved_limit=line.approved_limit, effective_limit=effective)
    return LimitFactorSnapshot(
        credit_line=line, as_of=business_date, trigger=trigger, approved_limit=line.approved_limit,
        effective_limit=effective, factors=factors, change_request=change_request, actor_label=actor_label,
    )


def credit_line_limits_recompute(
    *, line: CreditLine, business_date: date, trigger: str, actor_label: str,
    change_request: CreditLineChangeRequest | None = None,
) -> tuple[Decimal, Decimal]:
    """Recompute one line's effective limit now (at approval, or an approved change of its limit or factors).

    `line` is locked by the caller and carries the approved limit and factor terms to use. Returns
    (effective limit before, after). Writes the snapshot; the caller audits and emits the event.
    """
    before = line.effective_limit
    flow, margin = _factor_inputs([line], business_date)
    effective, factors = limit_factors_compute(line=line, business_date=business_date, flow_credits=flow[line.pk],
                                               margin_balance=margin[line.pk])
    _apply(line, effective=effective, factors=factors, business_date=business_date, trigger=trigger,
           actor_label=actor_label, change_request=change_request).save()
    line.effective_limit, line.limit_factors, line.limit_factors_date = effective, factors, business_date
    return before, effective


def credit_limits_recompute_chunk(*, company_ids: list[int], business_date: date, actor_label: str) -> int:
    """End of day: recompute the effective limits of the companies' live lines. Returns how many changed."""
    # Locked in id order, as approvals lock a line: an approval committing between this read and the write
    # below would otherwise have its new approved limit written back to the old one.
    lines = list(
        CreditLine.objects.select_for_update(of=("self",), no_key=True)
        .filter(company_id__in=company_ids, status__in=LIMITED_LINE_STATES)
        .select_related("company")
        .order_by("id")
    )
    if not lines:
        return 0
    flow, margin = _factor_inputs(lines, business_date)
    changed = 0
    snapshots = []
    for line in lines:
        effective, factors = limit_factors_compute(
            line=line, business_date=business_date, flow_credits=flow[line.pk], margin_balance=margin[line.pk]
        )
        before = line.effective_limit
        snapshots.append(_apply(line, effective=effective, factors=factors, business_date=business_date,
                                trigger=LimitFactorTrigger.END_OF_DAY, actor_label=actor_label,
                                change_request=None))
        if effective != before:
            audit_record(
                action="credit_line.limit_recomputed",
                obj=line,
                actor_label=actor_label,
                company=line.company,
                before={"effective_limit": amount_str(before)},
                after={"effective_limit": amount_str(effective), "limit_factors": factors},
            )
            credit_line_emit_event(line=line, type="credit_line.limit_changed")
            if effective < before:
                credit_line_thresholds_check(line=line, business_date=business_date)
            changed += 1
    LimitFactorSnapshot.objects.bulk_create(snapshots)
    return changed


def credit_line_margin_fell(
    *, company_id: int, business_date: date, actor_label: str
) -> tuple[Decimal, Decimal] | None:
    """The company's margin deposit was set off against its debt: a live line with a margin factor gets its
    effective limit recomputed at once (the deposit no longer backs it), not only at end of day. Call inside
    the set-off's transaction. Returns (effective limit before, after), or None when no line has the factor."""
    line = (
        CreditLine.objects.select_for_update()
        .select_related("company")
        .filter(company_id=company_id, status__in=LIMITED_LINE_STATES, margin_multiple__isnull=False)
        .order_by("id")
        .first()
    )
    if line is None:
        return None
    before, after = credit_line_limits_recompute(
        line=line, business_date=business_date, trigger=LimitFactorTrigger.MARGIN_SETOFF, actor_label=actor_label
    )
    if after != before:
        audit_record(
            action="credit_line.limit_recomputed",
            obj=line,
            actor_label=actor_label,
            company=line.company,
            before={"effective_limit": amount_str(before)},
            after={"effective_limit": amount_str(after), "limit_factors": line.limit_factors},
            reason="margin set-off",
        )
        credit_line_emit_event(line=line, type="credit_line.limit_changed")
        if after < before:
            credit_line_thresholds_check(line=line, business_date=business_date)
    return before, after
