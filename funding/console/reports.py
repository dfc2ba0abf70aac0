"""Reports for bank staff, computed from the ledger (and payout attempts for the channel report).

Each report is a `Report`: columns (stable CSV keys with translated labels), rows and an optional totals row.
Amounts are Decimals quantized to 0.01; CSV writes them plainly ("1234.50"), the pages with separators.

Daily position: every entry on a company's receivable accounts (advance, fee, penalty) falls in exactly one
category, so closing = opening + advanced + fees + penalties - repaid equals the ledger balance:
- a debit is "advanced" (advance receivable), "fees" or "penalties" by account;
- a credit of a returned payout (kind payout.returned) reduces "advanced"; every other credit is "repaid";
- a reversal ("<kind>.reversal") counts against the category of the entry it mirrors.
Overdue is derived first-in-first-out (repayments settle the oldest receivable first): at the close of
date D, what was booked on D is not yet due; the rest of the closing balance is overdue, aged by the days
since its due date (the first business day after it was booked).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from funding.exports import csv_text
from funding.models import AgingBucket, Company
from funding.selectors import (
    AGING_BUCKETS,
    CATEGORIES,
    aging_bucket,
    next_business_days,
    receivable_movements,
    receivable_net,
)
from ledger.models import DEBIT_NORMAL, Account, AccountKind, Entry, EntryDirection
from ledger.money import ZERO, money
from settlement.models import AttemptStatus, Channel, PayoutAttempt
from settlement.services.channels import SUCCESS_RATE_COUNTS, channel_success_rate

# The report's stable CSV key of each aging bucket (the buckets: funding.selectors.AGING_BUCKETS).
AGING_KEYS = {
    AgingBucket.D1_3: "overdue_1_3",
    AgingBucket.D4_7: "overdue_4_7",
    AgingBucket.D8_30: "overdue_8_30",
    AgingBucket.OVER_30: "overdue_31_plus",
}


@dataclass
class Report:
    title: str
    columns: list[tuple[str, Any]]  # (CSV key, translated label)
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [key for key, _label in self.columns]


def report_csv(report: Report) -> str:
    """CSV with the stable keys as header; amounts as plain decimals, no thousands separators; every cell
    through funding.exports (formula triggers quoted)."""
    rows = report.rows + ([report.totals] if report.totals else [])
    return csv_text(report.keys, ([row.get(key) for key in report.keys] for row in rows))


def _due_dates(days: list[date]) -> dict[date, date]:
    """Each booking date's due date: its next business day (funding.selectors), else the next calendar day
    where the calendar cannot tell."""
    return {day: next_day or day + timedelta(days=1) for day, next_day in next_business_days(days).items()}


def overdue_aging(
    *, history: dict[date, dict[str, Decimal]], as_of: date, closing: Decimal
) -> dict[str, Decimal]:
    """First in, first out: the closing balance less what was booked on `as_of`, aged by days past due."""
    aging = {AGING_KEYS[bucket]: ZERO for bucket, _first, _last in AGING_BUCKETS}
    today = history.get(as_of)
    booked_today = max(today["advanced"] + today["fees"] + today["penalties"], ZERO) if today else ZERO
    remaining = max(closing - booked_today, ZERO)
    overdue = remaining
    earlier = sorted((d for d in history if d < as_of), reverse=True)
    due = _due_dates(earlier)
    for day in earlier:
        if remaining <= 0:
            break
        booked = max(history[day]["advanced"] + history[day]["fees"] + history[day]["penalties"], ZERO)
        part = min(booked, remaining)
        if part <= 0:
            continue
        days_past_due = max((as_of - due[day]).days + 1, 1)
        aging[AGING_KEYS[aging_bucket(days_past_due)]] += part
        remaining -= part
    if remaining > 0:  # older than any booking we can attribute: count it as the oldest
        aging[AGING_KEYS[AGING_BUCKETS[-1][0]]] += remaining
    return {"overdue": overdue, **aging}


def daily_position(*, business_date: date) -> Report:
    """Per company, for one business date, from the ledger alone."""
    companies = list(Company.objects.order_by("code").values_list("code", "legal_name"))
    movements = receivable_movements(end=business_date, owners=[code for code, _ in companies])
    rows = []
    for code, legal_name in companies:
        history = movements.get(code, {})
        opening = sum((receivable_net(v) for d, v in history.items() if d < business_date), ZERO)
        day = history.get(business_date, dict.fromkeys(CATEGORIES, ZERO))
        closing = opening + receivable_net(day)
        aging = overdue_aging(history=history, as_of=business_date, closing=closing)
        rows.append({
            "business_date": business_date,
            "company": code,
            "legal_name": legal_name,
            "opening_outstanding": money(opening),
            **{category: money(day[category]) for category in CATEGORIES},
            "closing_outstanding": money(closing),
            **{k: money(v) for k, v in aging.items()},
        })
    amount_keys = ["opening_outstanding", *CATEGORIES, "closing_outstanding", "overdue",
                   *[AGING_KEYS[bucket] for bucket, _first, _last in AGING_BUCKETS]]
    totals = {"business_date": business_date, "company": "TOTAL", "legal_name": "",
              **{k: sum((r[k] for r in rows), ZERO) for k in amount_keys}}
    return Report(
        title=str(_("Daily position")),
        columns=[
            ("business_date", _("Business date")),
            ("company", _("Company")),
            ("legal_name", _("Legal name")),
            ("opening_outstanding", _("Opening outstanding")),
            ("advanced", _("Advanced")),
            ("fees", _("Fees")),
            ("penalties", _("Penalties")),
            ("repaid", _("Repaid")),
            ("closing_outstanding", _("Closing outstanding")),
            ("overdue", _("Overdue")),
            ("overdue_1_3", _("Overdue 1-3 days")),
            ("overdue_4_7", _("Overdue 4-7 days")),
            ("overdue_8_30", _("Overdue 8-30 days")),
            ("overdue_31_plus", _("Overdue over 30 days")),
            # Last, so that the CSV's earlier columns keep their positions for existing readers.
            ("returned", _("Returned (退汇)")),
        ],
        rows=rows,
        totals=totals,
        params={"business_date": business_date},
    )


def _account_totals(as_of: date):
    dated = Q(entries__transaction__business_date__lte=as_of)
    return (
        Account.objects.annotate(
            debits=Sum("entries__amount", filter=dated & Q(entries__direction=EntryDirection.DEBIT)),
            credits=Sum("entries__amount", filter=dated & Q(entries__direction=EntryDirection.CREDIT)),
        )
        .filter(Q(debits__isnull=False) | Q(credits__isnull=False))
    )


def _accounts_in_order(as_of: date) -> list[Account]:
    # Sorted in Python: the database collation must not decide the order of "ACME:..." and "bank:...".
    return sorted(_account_totals(as_of), key=lambda a: (a.currency, a.code))


def trial_balance(*, as_of: date) -> Report:
    """Each account's net balance on its debit or credit side, as of the close of `as_of`; totals agree."""
    rows = []
    for account in _accounts_in_order(as_of):
        net = (account.debits or ZERO) - (account.credits or ZERO)
        rows.append({
            "account": account.code,
            "name": account.name,
            "type": account.type,
            "currency": account.currency,
            "debit": money(max(net, ZERO)),
            "credit": money(max(-net, ZERO)),
        })
    totals = {"account": "TOTAL", "name": "", "type": "", "currency": "",
              "debit": sum((r["debit"] for r in rows), ZERO),
              "credit": sum((r["credit"] for r in rows), ZERO)}
    return Report(
        title=str(_("Trial balance")),
        columns=[("account", _("Account")), ("name", _("Name")), ("type", _("Type")),
                 ("currency", _("Currency")), ("debit", _("Debit")), ("credit", _("Credit"))],
        rows=rows,
        totals=totals,
        params={"as_of": as_of},
    )


def account_balances(*, as_of: date) -> Report:
    """Posted debits, credits and the balance on the account's normal side, as of the close of `as_of`."""
    rows = []
    for account in _accounts_in_order(as_of):
        debits, credits = money(account.debits or ZERO), money(account.credits or ZERO)
        balance = debits - credits if account.type in DEBIT_NORMAL else credits - debits
        rows.append({
            "account": account.code,
            "kind": account.kind,
            "type": account.type,
            "owner": account.owner,
            "currency": account.currency,
            "debits": debits,
            "credits": credits,
            "balance": balance,
        })
    return Report(
        title=str(_("Account balances")),
        columns=[("account", _("Account")), ("kind", _("Kind")), ("type", _("Type")), ("owner", _("Owner")),
                 ("currency", _("Currency")), ("debits", _("Debits")), ("credits", _("Credits")),
                 ("balance", _("Balance"))],
        rows=rows,
        params={"as_of": as_of},
    )


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    if not whole:
        return None
    return money(Decimal(part) * 100 / Decimal(whole))


def success_rate_percent(*, succeeded: int, failed: int) -> Decimal | None:
    """settlement.services.channels.channel_success_rate in percent, to 0.01 (console and reports)."""
    rate = channel_success_rate(succeeded=succeeded, failed=failed)
    return None if rate is None else money(rate * 100)


def channel_costs(*, start: date, end: date) -> dict[str, Decimal]:
    """Channel cost booked start..end per channel: the channel_cost entries of journals that touch an
    account owned by that channel (the fee posting credits the channel's clearing account)."""
    cost_entries = Entry.objects.filter(
        account__kind=AccountKind.CHANNEL_COST,
        transaction__business_date__gte=start,
        transaction__business_date__lte=end,
    ).values("transaction_id", "direction", "amount")
    per_journal: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for entry in cost_entries:
        sign = 1 if entry["direction"] == EntryDirection.DEBIT else -1
        per_journal[entry["transaction_id"]] += sign * entry["amount"]
    owners = (
        Entry.objects.filter(transaction_id__in=list(per_journal),
                             account__kind__in=[AccountKind.CHANNEL_CLEARING, AccountKind.PAYOUTS_IN_TRANSIT])
        .values_list("transaction_id", "account__owner")
        .distinct()
    )
    result: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for journal_id, owner in owners:
        result[owner] += per_journal[journal_id]
    return dict(result)


def channel_report(*, start: date, end: date) -> Report:
    """Per channel: attempts created start..end (local dates), success rate, and cost booked start..end.

    Success rate = succeeded / (succeeded + failed): attempts still processing or unknown are not decided.
    """
    attempts = {
        row["channel_id"]: row
        for row in PayoutAttempt.objects.filter(created_at__date__gte=start, created_at__date__lte=end)
        .values("channel_id")
        .annotate(
            attempts=Count("id"),
            **SUCCESS_RATE_COUNTS,
            undecided=Count("id", filter=Q(status__in=[AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN])),
            amount_sent=Sum("amount"),
            amount_succeeded=Sum("amount", filter=Q(status=AttemptStatus.SUCCEEDED)),
        )
    }
    costs = channel_costs(start=start, end=end)
    rows = []
    for channel in Channel.objects.order_by("code"):
        row = attempts.get(channel.pk, {})
        succeeded, failed = row.get("succeeded", 0), row.get("failed", 0)
        rows.append({
            "channel": channel.code,
            "attempts": row.get("attempts", 0),
            "succeeded": succeeded,
            "failed": failed,
            "undecided": row.get("undecided", 0),
            "success_rate": success_rate_percent(succeeded=succeeded, failed=failed),
            "amount": money(row.get("amount_sent") or ZERO),
            "amount_succeeded": money(row.get("amount_succeeded") or ZERO),
            "cost": money(costs.get(channel.code, ZERO)),
        })
    return Report(
        title=str(_("Channel report")),
        columns=[("channel", _("Channel")), ("attempts", _("Attempts")), ("succeeded", _("Succeeded")),
                 ("failed", _("Failed")), ("undecided", _("Undecided")),
                 ("success_rate", _("Success rate %")), ("amount", _("Amount sent")),
                 ("amount_succeeded", _("Amount succeeded")), ("cost", _("Cost"))],
        rows=rows,
        params={"start": start, "end": end},
    )


def audit_report(events: list) -> Report:
    """The audit rows as a report: who or which job, when, what, on which object, from, to, why."""
    import json

    rows = [{
        "occurred_at": timezone.localtime(e.occurred_at).isoformat(timespec="seconds"),
        "actor": e.actor_label,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "company": e.company.code if e.company_id else "",
        "before": json.dumps(e.before, ensure_ascii=False, sort_keys=True),
        "after": json.dumps(e.after, ensure_ascii=False, sort_keys=True),
        "reason": e.reason,
    } for e in events]
    return Report(
        title=str(_("Audit trail")),
        columns=[("occurred_at", _("When")), ("actor", _("Who")), ("action", _("Action")),
                 ("object_type", _("Object type")), ("object_id", _("Object id")), ("company", _("Company")),
                 ("before", _("Before")), ("after", _("After")), ("reason", _("Reason"))],
        rows=rows,
    )
