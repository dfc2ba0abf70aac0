import io
from datetime import date
from decimal import Decimal

import pytest

from funding.errors import BusinessDayClosed, CreditLineFrozen, InsufficientLimit
from funding.models import (
    AdvanceStatus,
    AgingSnapshot,
    AuditEvent,
    BusinessDay,
    ChangeRequestKind,
    CreditLineStatus,
    PenaltyAccrual,
    WebhookEvent,
)
from funding.services.advances import advance_request
from funding.services.bank_statements import bank_statement_import
from funding.services.credit_lines import change_request_approve, change_request_propose
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import JobRun, JobRunStatus
from settlement.services.nightly import JobError, business_day_close, repayments_collect_run, steps
from tests.factories import company_with_line, payout_inputs, staff_user
from tests.settlement.nightly_helpers import (
    available,
    balance,
    credit_settlement,
    disbursed_advance,
    ledger_fingerprint,
    statement_csv,
)

pytestmark = pytest.mark.django_db

WED, THU, FRI, MON, TUE = (
    date(2026, 11, 25),
    date(2026, 11, 26),
    date(2026, 11, 27),
    date(2026, 11, 30),
    date(2026, 12, 1),
)


def current() -> date:
    return BusinessDay.objects.get().current


def test_overdue_freeze_refuse_repay_then_unfreeze_with_four_eyes(business_day):
    maker, checker = staff_user(), staff_user()
    company, line = company_with_line(maker=maker, checker=checker)
    advance = disbursed_advance(company, "100000.00")  # due Thursday, fee 30.00

    business_day_close()  # Wednesday: nothing is due yet
    assert current() == THU
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSED

    outcome = business_day_close()  # Thursday: nothing in the settlement account
    assert current() == FRI
    assert outcome.run.counts["advances_overdue"] == 1
    assert outcome.run.counts["lines_frozen"] == 1
    advance.refresh_from_db()
    line.refresh_from_db()
    assert advance.status == AdvanceStatus.OVERDUE
    assert advance.overdue_since == THU
    assert advance.aging_bucket == "1-3"
    assert line.status == CreditLineStatus.FROZEN
    assert WebhookEvent.objects.filter(type="advance.overdue", resource_id=advance.public_id).count() == 1
    assert WebhookEvent.objects.filter(type="credit_line.frozen", company=company).count() == 1
    frozen_audit = AuditEvent.objects.get(action="credit_line.frozen")
    assert frozen_audit.actor_label == "job:close_business_day"
    assert AgingSnapshot.objects.get(business_date=THU, company=company).advances == 1

    outstanding_before = line.outstanding
    with pytest.raises(CreditLineFrozen):
        advance_request(
            company=company,
            external_id="AFTER-FREEZE",
            amount=Decimal("10.00"),
            payouts=payout_inputs("10.00"),
        )
    line.refresh_from_db()
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), outstanding_before)

    # Penalty for Thursday (1 day): 100030.00 x 0.0005 = 50.015 -> 50.02 posted.
    advance.refresh_from_db()
    assert advance.penalty_accrued == Decimal("50.02")
    credit_settlement(company, "100080.02")
    repayments_collect_run()
    advance.refresh_from_db()
    line.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert (advance.penalty_repaid, advance.fee_repaid, advance.principal_repaid) == (
        Decimal("50.02"),
        Decimal("30.00"),
        Decimal("100000.00"),
    )
    assert available(company) == Decimal("0.00")
    assert balance(company, AccountKind.PENALTY_RECEIVABLE) == Decimal("0.00")
    assert line.status == CreditLineStatus.FROZEN  # not configured to unfreeze itself

    business_day_close()  # Friday: the line stays frozen until staff approve
    line.refresh_from_db()
    assert line.status == CreditLineStatus.FROZEN

    request = change_request_propose(
        credit_line=line, kind=ChangeRequestKind.UNFREEZE, proposed={}, maker=maker, reason="repaid in full"
    )
    change_request_approve(request=request, checker=checker, reason="checked")
    line.refresh_from_db()
    assert line.status == CreditLineStatus.ACTIVE
    new = advance_request(
        company=company, external_id="AFTER-UNFREEZE", amount=Decimal("10.00"), payouts=payout_inputs("10.00")
    )
    assert new.due_date == date(2026, 12, 1)  # requested Monday
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_penalty_accrues_daily_at_the_higher_scale_over_a_weekend(business_day):
    company, line = company_with_line(penalty_rate="0.000500")
    advance = disbursed_advance(company, "100000.00")
    business_day_close()  # Wed
    business_day_close()  # Thu: overdue; 1 day (Thu -> Fri)
    business_day_close()  # Fri: 3 days (Fri -> Mon)
    business_day_close()  # Mon: 1 day (Mon -> Tue)
    assert current() == TUE

    accruals = list(PenaltyAccrual.objects.filter(advance=advance).order_by("accrual_date"))
    assert [(a.accrual_date, a.days, a.base, a.amount_exact, a.posted) for a in accruals] == [
        (THU, 1, Decimal("100030.00"), Decimal("50.01500000"), Decimal("50.02")),
        (FRI, 3, Decimal("100030.00"), Decimal("150.04500000"), Decimal("150.04")),
        (MON, 1, Decimal("100030.00"), Decimal("50.01500000"), Decimal("50.02")),
    ]
    advance.refresh_from_db()
    assert advance.penalty_accrued_exact == Decimal("250.07500000")
    assert advance.penalty_accrued == Decimal("250.08")
    assert balance(company, AccountKind.PENALTY_RECEIVABLE) == Decimal("250.08")
    assert Account.objects.get(kind=AccountKind.PENALTY_INCOME, owner="").balance == Decimal("250.08")
    journals = JournalTransaction.objects.filter(kind="penalty.accrual").order_by("business_date")
    assert [j.reference for j in journals] == [
        f"penalty:{d.isoformat()}:{company.code}" for d in (THU, FRI, MON)
    ]
    assert advance.aging_bucket == "4-7"  # Tuesday is 5 days after Thursday

    # Partial repayment pays penalty first, then fee, then principal.
    credit_settlement(company, "300.00")
    repayments_collect_run()
    advance.refresh_from_db()
    assert (advance.penalty_repaid, advance.fee_repaid, advance.principal_repaid) == (
        Decimal("250.08"),
        Decimal("30.00"),
        Decimal("19.92"),
    )
    assert advance.status == AdvanceStatus.OVERDUE
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_second_close_of_the_same_date_changes_nothing(business_day):
    company, _ = company_with_line()
    disbursed_advance(company, "5000.00")
    business_day_close()
    business_day_close()
    fingerprint = ledger_fingerprint()
    events = WebhookEvent.objects.count()
    audits = AuditEvent.objects.count()

    outcome = business_day_close(business_date=THU)

    assert outcome.changed is False
    assert current() == FRI
    assert ledger_fingerprint() == fingerprint
    assert (WebhookEvent.objects.count(), AuditEvent.objects.count()) == (events, audits)
    assert JobRun.objects.filter(job="close_business_day", business_date=THU).count() == 1
    with pytest.raises(JobError):
        business_day_close(business_date=MON)  # not the current date and not closed


def test_auto_unfreeze_once_cleared(business_day):
    company, line = company_with_line(auto_unfreeze=True)
    advance = disbursed_advance(company, "1000.00")
    business_day_close()
    business_day_close()
    line.refresh_from_db()
    assert line.status == CreditLineStatus.FROZEN
    credit_settlement(company, "2000.00")

    outcome = business_day_close()  # Friday: the last repayment pass clears it, then the line unfreezes

    advance.refresh_from_db()
    line.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert line.status == CreditLineStatus.ACTIVE
    assert outcome.run.counts["lines_unfrozen"] == 1
    assert WebhookEvent.objects.filter(type="credit_line.unfrozen", company=company).count() == 1


def test_effective_limit_is_the_smallest_factor_and_blocks_new_advances_only(business_day):
    company, line = company_with_line(limit="1000000.00")
    disbursed_advance(company, "100000.00")
    # The factors come later, by an approved change: with no credits and no margin yet, the limit drops to 0 at
    # once (contract 1.7: recomputed at every limit change), below the 100000.00 already drawn.
    change_request_approve(
        request=change_request_propose(
            credit_line=line, kind=ChangeRequestKind.CHANGE_TERMS, maker=staff_user(), reason="factors",
            proposed={"flow_multiple": "2", "flow_window_days": 5, "margin_multiple": "10"},
        ),
        checker=staff_user(),
    )
    line.refresh_from_db()
    assert (line.approved_limit, line.effective_limit) == (Decimal("1000000.00"), Decimal("0.00"))
    credit_settlement(company, "100000.00")  # value date Wednesday
    bank_statement_import(
        stream=io.BytesIO(
            statement_csv(("2026-11-25", company.margin_account_no, "C", "3000.00", "MRG1", "", "margin"))
        ),
        filename="m.csv",
        imported_by="test",
    )
    events_before = WebhookEvent.objects.filter(type="credit_line.limit_changed", company=company).count()

    outcome = business_day_close()

    line.refresh_from_db()
    # flow: 2 x (100000 / 5 business days) = 40000; margin: 10 x 3000 = 30000.
    assert line.effective_limit == Decimal("30000.00")
    assert line.approved_limit == Decimal("1000000.00")
    assert line.limit_factors_date == WED
    assert [(f["factor"], f["value"]) for f in line.limit_factors] == [
        ("approved_limit", "1000000.00"),
        ("flow", "40000.00"),
        ("margin", "30000.00"),
    ]
    assert outcome.run.counts["limits_changed"] == 1
    assert (
        WebhookEvent.objects.filter(type="credit_line.limit_changed", company=company).count()
        == events_before + 1
    )
    # Already drawn: untouched. New advances: refused while usage exceeds the limit.
    assert line.outstanding == Decimal("100000.00")
    with pytest.raises(InsufficientLimit):
        advance_request(
            company=company,
            external_id="OVER",
            amount=Decimal("10.00"),
            payouts=payout_inputs("10.00"),
            use_own_funds=False,
        )


def test_failed_close_keeps_the_day_closing_and_resumes(business_day, monkeypatch):
    company, _ = company_with_line()
    advance = disbursed_advance(company, "1000.00")
    business_day_close()

    def broken(ids, run):
        raise RuntimeError("disk full")

    monkeypatch.setitem(steps.STEP_FUNCTIONS, "penalty", broken)
    with pytest.raises(RuntimeError):
        business_day_close()
    run = JobRun.objects.get(job="close_business_day", business_date=THU)
    assert (run.status, run.step) == (JobRunStatus.FAILED, "penalty")
    assert "disk full" in run.error
    assert BusinessDay.objects.get().closing is True
    with pytest.raises(BusinessDayClosed):
        advance_request(
            company=company, external_id="DURING", amount=Decimal("1.00"), payouts=payout_inputs("1.00")
        )
    with pytest.raises(JobError):
        repayments_collect_run()

    monkeypatch.undo()
    outcome = business_day_close()

    assert outcome.run.status == JobRunStatus.SUCCEEDED
    assert outcome.run.attempts == 2
    assert current() == FRI
    assert BusinessDay.objects.get().closing is False
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.OVERDUE
    assert advance.penalty_accrued == Decimal("0.50")  # 1000.30 x 0.0005 = 0.50015
    assert JournalTransaction.objects.filter(kind="penalty.accrual").count() == 1


def test_close_refuses_when_the_next_business_day_is_unknown(business_day):
    from funding.errors import CalendarUnavailable

    BusinessDay.objects.update(current=date(2026, 12, 31))  # 2027 is not seeded in the tests
    company, _ = company_with_line()
    runs_before = JobRun.objects.count()
    with pytest.raises(CalendarUnavailable):
        business_day_close()
    assert JobRun.objects.count() == runs_before
    assert BusinessDay.objects.get().closing is False
    assert current() == date(2026, 12, 31)


def test_auto_unfreeze_leaves_a_staff_freeze_alone(business_day):
    from funding.services.credit_lines import credit_line_freeze

    company, line = company_with_line(auto_unfreeze=True)
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="KYC review")

    outcome = business_day_close()

    line.refresh_from_db()
    assert line.status == CreditLineStatus.FROZEN
    assert outcome.run.counts.get("lines_unfrozen", 0) == 0
