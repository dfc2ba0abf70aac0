"""Margin (保证金) set-off under four eyes: allocation penalty -> fee -> principal across the overdue advances
(the repayment's one allocation), balanced postings, events, audit, refusals without side effects."""

import io
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from funding.errors import BusinessDayClosed, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import Advance, AdvanceStatus, AuditEvent, BusinessDay, CreditLine, WebhookEvent
from funding.services.bank_statements import bank_statement_import
from ledger.models import AccountKind, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from settlement.errors import AmountExceedsOverdue, InsufficientMargin, NothingOverdue
from settlement.models import MarginSetOff, MarginSetOffStatus, Repayment, RepaymentAllocation, RepaymentSource
from settlement.services.margin import (
    margin_available,
    margin_overdue_total,
    margin_setoff_approve,
    margin_setoff_propose,
    margin_setoff_reject,
)
from settlement.services.nightly import business_day_close
from tests.factories import company_with_line, staff_user
from tests.settlement.nightly_helpers import balance, disbursed_advance, ledger_fingerprint, statement_csv

pytestmark = pytest.mark.django_db

MON = date(2026, 11, 30)


def margin_statement(company, direction: str, amount: str, reference: str) -> None:
    data = statement_csv(
        (BusinessDay.objects.get().current.isoformat(), company.margin_account_no, direction, amount, reference,
         "", "margin")
    )
    result = bank_statement_import(stream=io.BytesIO(data), filename="margin.csv", imported_by="test")
    assert result.ok, result.rejections


@pytest.fixture
def overdue_company(business_day):
    return make_overdue_company()


def make_overdue_company():
    """Two overdue advances on Monday 2026-11-30, a margin deposit of 120,000.00, the line frozen.

    A: 100,000.00 on Wed (due Thu, fee 30.00), overdue Thu; penalty Thu 1 day + Fri 3 days on 100,030.00 at
    0.0005: 50.015 + 150.045 = 200.06. B: 50,000.00 on Thu (due Fri, fee 15.00), overdue Fri; penalty 3 days on
    50,015.00: 75.0225 -> 75.02. Overdue total 100,230.06 + 50,090.02 = 150,320.08.
    """
    company, line = company_with_line(penalty_rate="0.000500")
    first = disbursed_advance(company, "100000.00")
    business_day_close()  # Wed
    second = disbursed_advance(company, "50000.00")
    business_day_close()  # Thu: A overdue, the line frozen
    business_day_close()  # Fri: B overdue
    assert BusinessDay.objects.get().current == MON
    margin_statement(company, "C", "120000.00", "MRG-DEPOSIT-1")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.fee, first.penalty_accrued) == (AdvanceStatus.OVERDUE, Decimal("30.00"),
                                                              Decimal("200.06"))
    assert (second.status, second.fee, second.penalty_accrued) == (AdvanceStatus.OVERDUE, Decimal("15.00"),
                                                                 Decimal("75.02"))
    line.refresh_from_db()
    assert line.status == "frozen"
    return company, line, first, second


def _state(company) -> tuple:
    """Everything a set-off may change: ledger, advances, line counters, repayments, events, audit, set-offs."""
    line = CreditLine.objects.get(company=company)
    return (
        ledger_fingerprint(),
        sorted(Advance.objects.filter(company=company).values_list(
            "id", "status", "version", "penalty_repaid", "fee_repaid", "principal_repaid")),
        (line.status, line.reserved, line.outstanding, line.limit_ceiling, line.effective_limit),
        Repayment.objects.count(),
        RepaymentAllocation.objects.count(),
        WebhookEvent.objects.count(),
        AuditEvent.objects.count(),
        sorted(MarginSetOff.objects.values_list("id", "status", "checker_id", "repayment_id")),
    )


def test_setoff_allocates_penalty_fee_principal_oldest_first_with_postings_events_and_audit(overdue_company):
    company, line, first, second = overdue_company
    maker, checker = staff_user("maker1"), staff_user("checker1")
    assert margin_available(company=company) == Decimal("120000.00")
    assert margin_overdue_total(company=company) == Decimal("150320.08")
    versions = (first.version, second.version)

    setoff = margin_setoff_propose(company=company, amount="100330.08", maker=maker, reason="overdue since Thu")
    assert (setoff.status, setoff.margin_balance_at_proposal, setoff.overdue_at_proposal) == (
        MarginSetOffStatus.PENDING, Decimal("120000.00"), Decimal("150320.08"))
    assert Repayment.objects.count() == 0

    setoff = margin_setoff_approve(setoff=setoff, checker=checker, reason="checked the deposit agreement")

    setoff.refresh_from_db()
    assert (setoff.status, setoff.checker, setoff.business_date) == (MarginSetOffStatus.APPROVED, checker, MON)
    # A: penalty 200.06, fee 30.00, principal 100,000.00 (100,230.06, paid in full); the remaining 100.02 goes to
    # B: penalty 75.02, fee 15.00, principal 10.00.
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.penalty_repaid, first.fee_repaid, first.principal_repaid) == (
        AdvanceStatus.REPAID, Decimal("200.06"), Decimal("30.00"), Decimal("100000.00"))
    assert (second.status, second.penalty_repaid, second.fee_repaid, second.principal_repaid) == (
        AdvanceStatus.OVERDUE, Decimal("75.02"), Decimal("15.00"), Decimal("10.00"))
    assert first.aging_bucket == ""
    assert (first.version, second.version) == (versions[0] + 1, versions[1] + 1)

    repayment = setoff.repayment
    assert (repayment.source, repayment.reference, repayment.business_date) == (
        RepaymentSource.MARGIN_SETOFF, f"margin_setoff:{setoff.pk}", MON)
    assert (repayment.amount, repayment.penalty, repayment.fee, repayment.principal) == (
        Decimal("100330.08"), Decimal("275.08"), Decimal("45.00"), Decimal("100010.00"))
    allocations = {a.advance_id: (a.penalty, a.fee, a.principal, a.settles_advance)
                   for a in repayment.allocations.all()}
    assert allocations == {
        first.pk: (Decimal("200.06"), Decimal("30.00"), Decimal("100000.00"), True),
        second.pk: (Decimal("75.02"), Decimal("15.00"), Decimal("10.00"), False),
    }

    journal = JournalTransaction.objects.get(reference=f"margin_setoff:{setoff.pk}")
    assert journal.kind == "repayment"
    assert sorted((e.account.kind, e.direction, e.amount) for e in journal.entries.select_related("account")) == [
        (AccountKind.ADVANCE_RECEIVABLE, "C", Decimal("100010.00")),
        (AccountKind.FEE_RECEIVABLE, "C", Decimal("45.00")),
        (AccountKind.MARGIN, "D", Decimal("100330.08")),
        (AccountKind.PENALTY_RECEIVABLE, "C", Decimal("275.08")),
    ]
    assert balance(company, AccountKind.MARGIN) == Decimal("19669.92")
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("49990.00")
    assert balance(company, AccountKind.FEE_RECEIVABLE) == Decimal("0.00")
    assert balance(company, AccountKind.PENALTY_RECEIVABLE) == Decimal("0.00")
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("0.00")  # the settlement account is not touched
    line.refresh_from_db()
    assert (line.outstanding, line.reserved) == (Decimal("49990.00"), Decimal("0.00"))
    assert line.available == Decimal("950010.00")  # 1,000,000.00 - 49,990.00 (the line itself stays frozen)
    assert line.status == "frozen"
    assert margin_overdue_total(company=company) == Decimal("49990.00")

    repaid = WebhookEvent.objects.filter(type="advance.repaid", company=company)
    assert list(repaid.values_list("resource_id", flat=True)) == [first.public_id]
    assert repaid.get().payload["data"]["version"] == first.version
    assert repaid.get().payload["data"]["status"] == "repaid"

    # The company sees it on GET /api/v1/repayments, and its statement counts it as repaid.
    from funding.api.selectors_statements import repayment_list

    listed = repayment_list(company=company)
    assert [(r["id"], r["source"], r["amount"]) for r in listed] == [
        (f"margin_setoff:{setoff.pk}", "margin_setoff", "100330.08")]
    assert [(a["advance_id"], a["penalty"], a["fee"], a["principal"]) for a in listed[0]["allocations"]] == [
        (first.public_id, "200.06", "30.00", "100000.00"), (second.public_id, "75.02", "15.00", "10.00")]
    assert not WebhookEvent.objects.filter(type="credit_line.limit_changed", created_at__gte=setoff.created_at,
                                           company=company).exists()  # no margin factor: the limit stays

    proposed = AuditEvent.objects.get(action="margin_setoff.proposed")
    approved = AuditEvent.objects.get(action="margin_setoff.approved")
    booked = AuditEvent.objects.get(action="repayment.margin_setoff")
    assert (proposed.actor, proposed.actor_label, proposed.company) == (maker, "maker1", company)
    assert (approved.actor, approved.reason) == (checker, "checked the deposit agreement")
    assert (approved.after["maker"], approved.after["checker"], approved.after["amount"]) == (
        "maker1", "checker1", "100330.08")
    assert (booked.actor, booked.after["maker"], booked.after["checker"], booked.after["source"]) == (
        checker, "maker1", "checker1", "margin_setoff")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_setoff_of_everything_overdue_repays_every_advance(overdue_company):
    company, line, first, second = overdue_company
    margin_statement(company, "C", "40000.00", "MRG-DEPOSIT-2")
    setoff = margin_setoff_propose(company=company, amount="150320.08", maker=staff_user(), reason="all of it")
    margin_setoff_approve(setoff=setoff, checker=staff_user())
    assert set(Advance.objects.filter(company=company).values_list("status", flat=True)) == {AdvanceStatus.REPAID}
    line.refresh_from_db()
    assert line.outstanding == Decimal("0.00")
    assert balance(company, AccountKind.MARGIN) == Decimal("9679.92")  # 160,000.00 - 150,320.08
    assert WebhookEvent.objects.filter(type="advance.repaid", company=company).count() == 2
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_the_maker_cannot_approve_and_nothing_changes(overdue_company):
    company, *_ = overdue_company
    maker = staff_user()
    setoff = margin_setoff_propose(company=company, amount="1000.00", maker=maker, reason="overdue")
    before = _state(company)
    with pytest.raises(FourEyesViolation) as exc:
        margin_setoff_approve(setoff=setoff, checker=maker)
    assert exc.value.code == "four_eyes_violation"
    with pytest.raises(FourEyesViolation):
        margin_setoff_reject(setoff=setoff, checker=maker, reason="no")
    assert _state(company) == before
    # The database refuses it as well.
    with pytest.raises(IntegrityError), transaction.atomic():
        MarginSetOff.objects.filter(pk=setoff.pk).update(checker=maker)


@pytest.mark.parametrize(
    ("amount", "error", "code"),
    [
        ("120000.01", InsufficientMargin, "insufficient_margin"),
        ("150320.09", AmountExceedsOverdue, "amount_exceeds_overdue"),
    ],
)
def test_proposal_refusals_leave_nothing(overdue_company, amount, error, code):
    company, *_ = overdue_company
    before = _state(company)
    with pytest.raises(error) as exc:
        margin_setoff_propose(company=company, amount=amount, maker=staff_user(), reason="too much")
    assert exc.value.code == code
    assert exc.value.details["margin_available"] == "120000.00"
    assert exc.value.details["overdue"] == "150320.08"
    assert _state(company) == before


@pytest.mark.parametrize("amount", ["0", "-5.00", "1.001", "abc", "NaN"])
def test_bad_amounts_are_validation_errors(overdue_company, amount):
    company, *_ = overdue_company
    before = _state(company)
    with pytest.raises(ValidationFailed):
        margin_setoff_propose(company=company, amount=amount, maker=staff_user(), reason="bad")
    with pytest.raises(ValidationFailed):
        margin_setoff_propose(company=company, amount="10.00", maker=staff_user(), reason="  ")
    assert _state(company) == before


def test_nothing_overdue_is_refused(business_day):
    company, _ = company_with_line()
    disbursed_advance(company, "1000.00")  # due tomorrow: not overdue
    margin_statement(company, "C", "5000.00", "MRG-NOTHING")
    before = _state(company)
    with pytest.raises(NothingOverdue) as exc:
        margin_setoff_propose(company=company, amount="100.00", maker=staff_user(), reason="nothing")
    assert exc.value.code == "nothing_overdue"
    assert _state(company) == before


def test_approval_rechecks_under_lock_and_refuses_without_side_effects(overdue_company):
    company, *_ = overdue_company
    setoff = margin_setoff_propose(company=company, amount="110000.00", maker=staff_user(), reason="overdue")
    margin_statement(company, "D", "20000.00", "MRG-WITHDRAW-1")  # the margin falls to 100,000.00
    before = _state(company)
    checker = staff_user()
    with pytest.raises(InsufficientMargin) as exc:
        margin_setoff_approve(setoff=setoff, checker=checker)
    assert exc.value.details == {"amount": "110000.00", "margin_available": "100000.00", "overdue": "150320.08"}
    assert _state(company) == before
    setoff.refresh_from_db()
    assert setoff.status == MarginSetOffStatus.PENDING

    BusinessDay.objects.update(closing=True)
    with pytest.raises(BusinessDayClosed):
        margin_setoff_approve(setoff=setoff, checker=checker)
    BusinessDay.objects.update(closing=False)
    assert _state(company) == before

    margin_setoff_reject(setoff=setoff, checker=checker, reason="margin withdrawn")
    setoff.refresh_from_db()
    assert (setoff.status, setoff.checker, setoff.repayment) == (MarginSetOffStatus.REJECTED, checker, None)
    rejected = AuditEvent.objects.get(action="margin_setoff.rejected")
    assert (rejected.actor, rejected.reason) == (checker, "margin withdrawn")
    with pytest.raises(InvalidState):
        margin_setoff_approve(setoff=setoff, checker=checker)
    assert Repayment.objects.count() == 0


def test_approval_after_the_debt_was_repaid_is_refused(overdue_company):
    company, *_ = overdue_company
    margin_statement(company, "C", "100000.00", "MRG-DEPOSIT-3")
    first = margin_setoff_propose(company=company, amount="150000.00", maker=staff_user(), reason="a")
    second = margin_setoff_propose(company=company, amount="150000.00", maker=staff_user(), reason="b")
    margin_setoff_approve(setoff=first, checker=staff_user())
    before = _state(company)
    with pytest.raises(AmountExceedsOverdue) as exc:
        margin_setoff_approve(setoff=second, checker=staff_user())
    assert exc.value.details["overdue"] == "320.08"
    assert _state(company) == before


def _as(role: str, name: str):
    from django.contrib.auth.models import Group, User
    from django.test import Client

    user = User.objects.create_user(name, password="pw-long-enough-123", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_console_credit_officer_proposes_and_credit_approver_applies(overdue_company):
    from django.urls import reverse

    company, line, first, second = overdue_company
    add_url = reverse("admin:settlement_marginsetoff_add")
    list_url = reverse("admin:settlement_marginsetoff_changelist")
    approver = _as("credit_approver", "approver1")
    assert approver.get(add_url).status_code == 403  # a checker proposes nothing
    officer = _as("credit_officer", "officer1")
    assert officer.get(add_url).status_code == 200

    refused = officer.post(add_url, {"company": company.pk, "amount": "120000.01", "maker_reason": "too much"})
    assert refused.status_code == 200 and "insufficient_margin" in refused.content.decode()
    assert MarginSetOff.objects.count() == 0

    response = officer.post(add_url, {"company": company.pk, "amount": "100330.08", "maker_reason": "overdue"})
    assert response.status_code == 302
    setoff = MarginSetOff.objects.get()
    assert (setoff.amount, setoff.maker.username, setoff.status) == (Decimal("100330.08"), "officer1", "pending")

    # The officer holds no approve permission: the action is refused, nothing changes.
    officer.post(list_url, {"action": "approve", "_selected_action": [setoff.pk], "apply": "1", "reason": ""})
    setoff.refresh_from_db()
    assert setoff.status == "pending"
    assert approver.get(list_url).status_code == 200
    response = approver.post(
        list_url, {"action": "approve", "_selected_action": [setoff.pk], "apply": "1", "reason": "ok"}
    )
    assert response.status_code == 302
    setoff.refresh_from_db()
    assert (setoff.status, setoff.checker.username, setoff.repayment.amount) == (
        "approved", "approver1", Decimal("100330.08"))
    line.refresh_from_db()
    assert line.outstanding == Decimal("49990.00")
    assert _as("auditor", "auditor1").get(reverse("admin:settlement_marginsetoff_change", args=[setoff.pk])
                                          ).status_code == 200


def test_a_margin_factor_is_recomputed_at_once_from_the_smaller_deposit(business_day):
    from funding.models import LimitFactorSnapshot
    from funding.services.credit_lines import change_request_approve, company_create, credit_line_create

    company = company_create(code="MARGINED", legal_name="Margined Payments", settlement_account_no="3100999",
                             margin_account_no="3200999")
    margin_statement(company, "C", "300000.00", "MRG-MARGINED-1")
    line = credit_line_create(company=company, actor=staff_user(), terms={
        "approved_limit": "1000000.00", "daily_fee_rate": "0.000300", "penalty_rate": "0.000500",
        "valid_from": "2026-01-01", "valid_to": "2027-12-31", "margin_multiple": "2.0"})
    change_request_approve(request=line.change_requests.get(), checker=staff_user())
    line.refresh_from_db()
    assert line.effective_limit == Decimal("600000.00")  # 2.0 x 300,000.00
    advance = disbursed_advance(company, "100000.00")  # fee 30.00, due Thu
    business_day_close()  # Wed
    business_day_close()  # Thu: overdue, penalty 100,030.00 x 0.0005 = 50.015 -> 50.02; frozen
    advance.refresh_from_db()
    assert (advance.status, advance.penalty_accrued) == (AdvanceStatus.OVERDUE, Decimal("50.02"))

    setoff = margin_setoff_propose(company=company, amount="100080.02", maker=staff_user(), reason="overdue")
    margin_setoff_approve(setoff=setoff, checker=staff_user("margin-checker"))

    advance.refresh_from_db()
    line.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert balance(company, AccountKind.MARGIN) == Decimal("199919.98")
    # 2.0 x 199,919.98 = 399,839.96: the deposit set off no longer backs the limit.
    assert (line.effective_limit, line.outstanding, line.available) == (
        Decimal("399839.96"), Decimal("0.00"), Decimal("399839.96"))
    snapshot = LimitFactorSnapshot.objects.filter(credit_line=line).order_by("-id").first()
    assert (snapshot.trigger, snapshot.effective_limit, snapshot.actor_label) == (
        "margin_setoff", Decimal("399839.96"), "margin-checker")
    assert WebhookEvent.objects.filter(type="credit_line.limit_changed", company=company).order_by("-id").first(
        ).payload["data"]["effective_limit"] == "399839.96"
    assert AuditEvent.objects.get(action="margin_setoff.approved").after["effective_limit"] == "399839.96"
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_work_queue_lists_pending_setoffs_with_buttons_for_the_checker_only(overdue_company):
    from django.urls import reverse

    company, *_ = overdue_company
    setoff = margin_setoff_propose(company=company, amount="1000.00", maker=staff_user("queue-maker"),
                                   reason="overdue since Thu")
    officer = _as("credit_officer", "officer2")
    page = officer.get(reverse("console:queues")).content.decode()
    assert f'data-margin-setoff="{setoff.pk}"' in page
    assert reverse("admin:settlement_marginsetoff_add") in page
    section = page.split('id="queue-margin-setoffs"')[1].split('class="console-card"')[0]
    assert 'data-action="approve"' not in section
    approver = _as("credit_approver", "approver2")
    approver.post(reverse("set_language"), {"language": "zh-hans"})
    page = approver.get(reverse("console:queues")).content.decode()
    section = page.split('id="queue-margin-setoffs"')[1].split('class="console-card"')[0]
    assert 'data-action="approve"' in section and "保证金抵扣" in section
    assert reverse("admin:settlement_marginsetoff_add") not in section
    margin_setoff_approve(setoff=setoff, checker=_user("approver2"))
    page = approver.get(reverse("console:queues")).content.decode()
    assert f'data-margin-setoff="{setoff.pk}"' not in page


def _user(username: str):
    from django.contrib.auth.models import User

    return User.objects.get(username=username)
