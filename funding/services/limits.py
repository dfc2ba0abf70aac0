"""Effective limits: the minimum of the approved limit and each configured factor, recomputed at end of day.

- flow: flow_multiple x the average daily credits to the settlement account (bank statement credits by
  value date) over the last `flow_window_days` business days up to the closed date;
- margin: margin_multiple x the margin-deposit balance.

Each factor's value is stored in CreditLine.limit_factors. A limit below current usage blocks new holds and
touches nothing already disbursed (funding.services.line_counters.line_set_limits).
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum

from funding.models import BankStatementLine, CalendarDay, CreditLine, CreditLineStatus, StatementDirection
from funding.representations import amount_str
from funding.services.audit import audit_record
from funding.services.credit_lines import credit_line_emit_event
from funding.services.line_counters import line_set_limits
from ledger.models import Account, AccountKind
from ledger.money import money

LIMITED_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]


def _business_days_up_to(day: date, count: int) -> list[date]:
    return list(
        CalendarDay.objects.filter(is_business_day=True, date__lte=day)
        .order_by("-date")
        .values_list("date", flat=True)[:count]
    )


def limit_factors_compute(
    *, line: CreditLine, business_date: date, flow_credits: dict[date, Decimal], margin_balance: Decimal
) -> tuple[Decimal, list[dict]]:
    """(effective limit, factors) of a line; `flow_credits`: value date -> settlement-account credits."""
    values = [line.approved_limit]
    factors: list[dict] = [{"factor": "approved_limit", "value": amount_str(line.approved_limit)}]
    if line.flow_multiple is not None:
        window = _business_days_up_to(business_date, line.flow_window_days)
        total = sum((flow_credits.get(d, Decimal(0)) for d in window), Decimal(0))
        # Divide by the full window even when the history is shorter: a new company earns its limit.
        average = money(total / line.flow_window_days) if line.flow_window_days else Decimal("0.00")
        value = money(line.flow_multiple * average)
        values.append(value)
        factors.append(
            {
                "factor": "flow",
                "value": amount_str(value),
                "multiple": str(line.flow_multiple),
                "average_daily_credits": amount_str(average),
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
                "multiple": str(line.margin_multiple),
                "margin_balance": amount_str(balance),
            }
        )
    return min(values), factors


def credit_limits_recompute_chunk(*, company_ids: list[int], business_date: date, actor_label: str) -> int:
    """Recompute the effective limits of the companies' live lines. Returns how many limits changed."""
    lines = list(
        CreditLine.objects.filter(company_id__in=company_ids, status__in=LIMITED_LINE_STATES)
        .select_related("company")
        .order_by("id")
    )
    if not lines:
        return 0
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
    flow: dict[int, dict[date, Decimal]] = defaultdict(dict)
    if longest:
        window = _business_days_up_to(business_date, longest)
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
                flow[row["account_id"]][row["value_date"]] = row["total"]
    changed = 0
    for line in lines:
        code = line.company.code
        settlement = accounts.get((code, AccountKind.SETTLEMENT))
        margin = accounts.get((code, AccountKind.MARGIN))
        effective, factors = limit_factors_compute(
            line=line,
            business_date=business_date,
            flow_credits=flow.get(settlement.id, {}) if settlement else {},
            margin_balance=margin.balance if margin else Decimal("0.00"),
        )
        before = amount_str(line.effective_limit)
        CreditLine.objects.filter(pk=line.pk).update(limit_factors=factors, limit_factors_date=business_date)
        if effective != line.effective_limit:
            line_set_limits(line_id=line.pk, approved_limit=line.approved_limit, effective_limit=effective)
            audit_record(
                action="credit_line.limit_recomputed",
                obj=line,
                actor_label=actor_label,
                company=line.company,
                before={"effective_limit": before},
                after={"effective_limit": amount_str(effective), "limit_factors": factors},
            )
            credit_line_emit_event(line=line, type="credit_line.limit_changed")
            changed += 1
    return changed
