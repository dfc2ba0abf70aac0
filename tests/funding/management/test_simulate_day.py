"""simulate_day over a few business days, through the real jobs: the repayment money arrives through the bank
statement import, so the paid companies are repaid and keep their limits; the unpaid company becomes overdue
at its due date's close, is charged penalty and frozen by the nightly chain. Money moves only through balanced
journals, the due date skips the added holiday, no line ends over a limit it was granted at."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import F

from funding.models import (
    Advance,
    AuditEvent,
    BankStatementLine,
    BusinessDay,
    CalendarDay,
    CreditLine,
    Payout,
    PenaltyAccrual,
)
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import Repayment

# transaction=True: the disbursement services refuse to call a channel inside a transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_simulate_three_days_paid_companies_keep_limits_the_unpaid_one_is_overdue_and_frozen(settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
    settings.WEBHOOK_ENQUEUE_ON_COMMIT = False
    settings.DISBURSEMENT_ROUTING_CACHE_SECONDS = 0  # each test has new channel rows
    out = StringIO()
    call_command("simulate_day", "--advances", "40", "--days", "3", "--seed", "7", stdout=out)
    text = out.getvalue()
    assert "== report" in text and "== day 3" in text and "== T+1 of the last day" in text
    first_date = date.fromisoformat(text.split("business date ")[1][:10])
    advances = Advance.objects.all()
    assert advances.order_by("id").first().business_date == first_date
    assert len(set(advances.values_list("business_date", flat=True))) == 3
    # Three closes and the last day's T+1 morning: every advance of the first two days has fallen due.
    assert BusinessDay.objects.get().current >= max(advances.values_list("due_date", flat=True))

    lines = CreditLine.objects.filter(company__code__startswith="SIM-").select_related("company")
    assert lines.count() == 5
    weak = lines.get(company__code__endswith="-WEAK")
    paid = [line for line in lines if line.pk != weak.pk]

    # The unpaid company: overdue advances charged penalty, its line frozen by the nightly job.
    assert weak.status == "frozen"
    freeze = AuditEvent.objects.get(action="credit_line.frozen", company=weak.company)
    assert freeze.actor_label == "job:close_business_day"
    overdue = list(Advance.objects.filter(company=weak.company, status="overdue"))
    assert overdue and all(a.penalty_accrued > 0 for a in overdue)
    penalty = sum((a.penalty_accrued - a.penalty_repaid for a in overdue), Decimal("0.00"))
    assert Account.objects.get(kind=AccountKind.PENALTY_RECEIVABLE, owner=weak.company.code).balance == penalty
    assert PenaltyAccrual.objects.filter(advance__company=weak.company).exists()
    assert not Repayment.objects.filter(company=weak.company).exists()
    assert "no money arrives (it cannot repay)" in text

    # The paid companies: repaid from their settlement accounts, never overdue, limits kept.
    for line in paid:
        assert line.status == "active", line.company.code
        assert line.available > Decimal("0.00"), (line.company.code, line.limit_factors)
        assert line.effective_limit > line.approved_limit / 2, (line.company.code, line.limit_factors)
        assert not Advance.objects.filter(company=line.company, status="overdue").exists()
        assert Repayment.objects.filter(company=line.company, source="settlement_debit").count() >= 2
        # Repayment money came through the bank statement import of each morning.
        assert BankStatementLine.objects.filter(
            account__owner=line.company.code, account__kind=AccountKind.SETTLEMENT, memo="T+1 settlement",
            direction="C",
        ).count() >= 3
    assert not JournalTransaction.objects.filter(kind="demo.funding").exists()

    # End of day recomputes the limits from flow and margin: a line may end above a lowered limit (that blocks
    # new advances and touches nothing drawn), but only when a factor cut the limit below its approved value.
    for line in lines.filter(reserved__gt=F("effective_limit") - F("outstanding")):
        assert line.effective_limit < line.approved_limit and line.available == 0, line.limit_factors
    holiday = CalendarDay.objects.get(name="simulate_day extra holiday")
    assert not holiday.is_business_day
    assert all(a.due_date > holiday.date for a in advances)
    assert not Payout.objects.exclude(
        status__in=["succeeded", "failed", "cancelled", "manual_review", "returned"]
    ).exists()
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_simulate_day_books_a_return_and_decides_reviews_through_the_real_commands(settings):
    from settlement.models import IntegrityCheckRun, ManualReview, PayoutReturn, RepaymentSource

    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
    settings.WEBHOOK_ENQUEUE_ON_COMMIT = False
    settings.DISBURSEMENT_ROUTING_CACHE_SECONDS = 0  # each test has new channel rows
    out = StringIO()
    call_command("simulate_day", "--advances", "40", "--days", "3", "--seed", "11", "--timeout-rate", "0.2",
                 stdout=out)
    text = out.getvalue()
    # Day 3 starts with a payout of day 1 (repaid on day 2) coming back (退汇) through the channel statement.
    returns = list(PayoutReturn.objects.select_related("payout__advance"))
    assert len(returns) == 1 and returns[0].payout.status == "returned"
    assert returns[0].payout.advance.business_date == date.fromisoformat(text.split("business date ")[1][:10])
    assert "the beneficiary's bank returns" in text and "returns (退汇): 1 payout(s)" in text
    # The returned principal had been repaid: it is refunded to the settlement account.
    assert Repayment.objects.filter(source=RepaymentSource.REFUND).count() == 1
    # Manual reviews were decided by two different staff members.
    decided = ManualReview.objects.exclude(status="open").exclude(proposed_by=None)
    assert decided.exists() and all(r.proposed_by_id != r.approved_by_id for r in decided)
    # The books stay whole, and every close's integrity check passed.
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []
    assert IntegrityCheckRun.objects.exists() and all(IntegrityCheckRun.objects.values_list("passed", flat=True))
