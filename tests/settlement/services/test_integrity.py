"""check_integrity: each check passes on a healthy day and detects a deliberately broken state (raw SQL where
the triggers allow it, or a trigger disabled inside the test's own transaction, always rolled back); the
end-of-day chain runs it after the close; a failure raises the metric, the console banner and a non-zero exit."""

import io
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from ledger.models import Account, AccountKind
from settlement.models import IntegrityCheckRun, PayoutAttempt
from settlement.services.disbursement import advance_dispatch
from settlement.services.integrity import integrity_check_run
from settlement.services.nightly import business_day_close, job_run_summary
from tests.factories import company_with_line
from tests.settlement.conftest import channel_configure
from tests.settlement.nightly_helpers import credit_settlement

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


@pytest.fixture
def day(advance_factory, channels):
    """A healthy day: 300.00 paid through BEPS, 400.00 handed to BEPS with no answer yet, then money arrived
    for tomorrow's repayment."""
    company, line = company_with_line()
    paid = advance_factory("100.00", "200.00", company=company)
    advance_dispatch(advance_id=paid.pk)
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0)
    unknown = advance_factory("400.00", company=company)
    advance_dispatch(advance_id=unknown.pk)
    statuses = sorted(PayoutAttempt.objects.values_list("channel__code", "status", "amount"))
    assert statuses == [("BEPS", "succeeded", Decimal("100.00")), ("BEPS", "succeeded", Decimal("200.00")),
                        ("BEPS", "unknown", Decimal("400.00"))]
    credit_settlement(company, "50000.00")
    return {"company": company, "line": line, "unknown": PayoutAttempt.objects.get(status="unknown")}


def _sql(statement: str, params: list | None = None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchone() if cursor.description else None


def _problems_when(*statements: tuple[str, list]) -> list[dict]:
    """Break the state inside a transaction, run the check there, then roll everything back."""
    found = []
    with pytest.raises(Rollback), transaction.atomic():
        for statement, params in statements:
            _sql(statement, params)
        found.extend(integrity_check_run(triggered_by="test").problems)
        raise Rollback
    assert IntegrityCheckRun.objects.count() == 0  # rolled back with the breakage
    return found


def test_a_healthy_day_passes_with_exact_figures(day):
    run = integrity_check_run(triggered_by="test")
    assert run.passed and run.problems == []
    assert run.figures == {
        "trial_balance": {"CNY": "0.00"},
        "accounts_checked": Account.objects.count(),
        "companies_checked": 1,
        "channels_checked": 1,
        "advance_receivable_total": "700.00",
        "in_transit_total": "400.00",
    }


def test_trial_balance_off(day):
    clearing = Account.objects.get(kind=AccountKind.BANK_CLEARING).pk
    # One lone entry: the balance trigger is deferred to COMMIT, which this transaction never reaches.
    problems = _problems_when(
        ("INSERT INTO ledger_journaltransaction (kind, description, business_date, reference, created_at) "
         "VALUES ('test.broken', '', '2026-11-25', 'broken:1', now())", []),
        ("INSERT INTO ledger_entry (transaction_id, account_id, direction, amount, currency) "
         "SELECT id, %s, 'D', 5.00, 'CNY' FROM ledger_journaltransaction WHERE reference = 'broken:1'", [clearing]),
    )
    assert problems == [{"check": "trial_balance", "subject": "CNY", "expected": "0.00", "actual": "5.00",
                         "message": "trial balance of CNY is off by 5.00 (debits exceed credits)"}]


def test_account_totals_differ_from_entries(day):
    problems = _problems_when(
        ("UPDATE ledger_account SET credits_posted = credits_posted + 1.00 WHERE code = 'bank:bank_clearing:CNY'", []),
    )
    assert problems == [{"check": "account_totals", "subject": "bank:bank_clearing:CNY", "expected": "0.00",
                         "actual": "1.00",
                         "message": "account bank:bank_clearing:CNY: stored credits 1.00, its entries sum to 0.00"}]


def test_entries_that_bypassed_the_totals_trigger(day):
    code = day["company"].code
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=code).pk
    clearing = Account.objects.get(kind=AccountKind.BANK_CLEARING).pk
    problems = _problems_when(
        ("ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_apply", []),
        ("INSERT INTO ledger_journaltransaction (kind, description, business_date, reference, created_at) "
         "VALUES ('test.broken', '', '2026-11-25', 'broken:2', now())", []),
        ("INSERT INTO ledger_entry (transaction_id, account_id, direction, amount, currency) "
         "SELECT id, a, d, 20.00, 'CNY' FROM ledger_journaltransaction, "
         "(VALUES (%s, 'D'), (%s, 'C')) AS legs(a, d) WHERE reference = 'broken:2'", [clearing, settlement]),
    )
    # The totals trigger did not run: each account's stored totals miss the 20.00.
    assert problems == [
        {"check": "account_totals", "subject": f"{code}:settlement:CNY", "expected": "50020.00",
         "actual": "50000.00",
         "message": f"account {code}:settlement:CNY: stored credits 50000.00, its entries sum to 50020.00"},
        {"check": "account_totals", "subject": "bank:bank_clearing:CNY", "expected": "50020.00",
         "actual": "50000.00",
         "message": "account bank:bank_clearing:CNY: stored debits 50000.00, its entries sum to 50020.00"},
    ]


def test_line_outstanding_differs_from_the_receivable(day):
    line, code = day["line"], day["company"].code
    problems = _problems_when(
        ("UPDATE funding_creditline SET outstanding = outstanding + 10.00 WHERE id = %s", [line.pk]),
    )
    # Receivable 700.00, of which 400.00 went out with no known outcome yet (still reserved on the line).
    assert problems == [{"check": "line_outstanding", "subject": code, "expected": "300.00", "actual": "310.00",
                         "message": f"company {code}: credit line {line.pk} outstanding 310.00, advance "
                                    "receivable balance 300.00 (less payouts out with no known outcome)"}]


def test_in_transit_differs_from_unresolved_attempts(day):
    problems = _problems_when(
        ("UPDATE settlement_payoutattempt SET status = 'failed' WHERE id = %s", [day["unknown"].pk]),
    )
    assert problems == [{"check": "in_transit", "subject": "BEPS", "expected": "0.00", "actual": "400.00",
                         "message": "channel BEPS: payouts in transit 400.00, unresolved attempts 0.00 "
                                    "(0 attempt(s))"}]


def test_command_exit_codes_and_json(day):
    out = io.StringIO()
    call_command("check_integrity", stdout=out)
    assert out.getvalue().strip() == (
        f"check_integrity: passed: trial balance CNY 0.00; {Account.objects.count()} accounts, 1 companies "
        "(receivable 700.00), 1 channels (in transit 400.00)"
    )
    out = io.StringIO()
    call_command("check_integrity", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert (body["passed"], body["problems"], body["business_date"]) == (True, [], "2026-11-25")
    assert body["figures"]["in_transit_total"] == "400.00"

    _sql("UPDATE settlement_payoutattempt SET status = 'failed' WHERE id = %s", [day["unknown"].pk])
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("check_integrity", "--json", stdout=out)
    assert str(failed.value) == (
        "check_integrity failed: 1 problem(s): channel BEPS: payouts in transit 400.00, unresolved attempts "
        "0.00 (0 attempt(s))"
    )
    assert json.loads(out.getvalue())["passed"] is False
    assert list(IntegrityCheckRun.objects.order_by("id").values_list("triggered_by", "passed")) == [
        ("check_integrity", True), ("check_integrity", True), ("check_integrity", False)]


def _metric(client: Client, name: str) -> str:
    lines = [line for line in client.get("/metrics").content.decode().splitlines() if line.startswith(name + " ")]
    return lines[0].split(" ", 1)[1]


def test_end_of_day_runs_the_check_after_the_close_and_a_failure_alerts(day, client):
    assert _metric(client, "engine_integrity_check_failed") == "0.0"
    assert _metric(client, "engine_integrity_check_age_seconds") == "-1.0"
    # A drift committed before the close (a hand edit of the totals).
    _sql("UPDATE ledger_account SET credits_posted = credits_posted + 1.00 WHERE code = 'bank:bank_clearing:CNY'")

    outcome = business_day_close()

    run = outcome.run
    assert run.status == "succeeded" and run.step == "done"
    check = IntegrityCheckRun.objects.get(job_run=run)
    assert (check.passed, check.triggered_by, check.business_date.isoformat()) == (
        False, "job:close_business_day", "2026-11-25")
    assert [p["subject"] for p in check.problems] == ["bank:bank_clearing:CNY"]
    assert run.counts["integrity_problems"] == 1
    assert "integrity check FAILED (1 problem(s), see check_integrity); next business date 2026-11-26" in (
        job_run_summary(run))
    assert _metric(client, "engine_integrity_check_failed") == "1.0"
    assert _metric(client, "engine_integrity_check_problems") == "1.0"
    staff = User.objects.create_user("fin", is_staff=True)
    staff.groups.add(Group.objects.get(name="finance"))
    client.force_login(staff)
    page = client.get(reverse("console:dashboard")).content.decode()
    assert 'id="integrity-alert"' in page
    assert "account bank:bank_clearing:CNY: stored credits 1.00, its entries sum to 0.00" in page
    assert 'id="integrity-alert"' in client.get(reverse("admin:index")).content.decode()

    # Repaired: the next check passes and the alert goes.
    _sql("UPDATE ledger_account SET credits_posted = credits_posted - 1.00 WHERE code = 'bank:bank_clearing:CNY'")
    call_command("check_integrity", stdout=io.StringIO())
    assert _metric(client, "engine_integrity_check_failed") == "0.0"
    assert 'id="integrity-alert"' not in client.get(reverse("console:dashboard")).content.decode()
    # The date is closed once: running the close again checks nothing more.
    assert business_day_close(business_date=run.business_date).changed is False
    assert IntegrityCheckRun.objects.filter(job_run__isnull=False).count() == 1


def test_a_check_that_cannot_run_does_not_keep_the_day_shut_and_still_alerts(day, client, monkeypatch):
    from django.db import DatabaseError

    from settlement.services.nightly import steps

    def broken(**kwargs):
        _sql("SELECT 1 / 0")  # a real database error inside the step's savepoint

    monkeypatch.setattr(steps, "integrity_check_run", broken)
    with pytest.raises(DatabaseError):
        broken()
    outcome = business_day_close()
    assert (outcome.run.status, outcome.run.next_business_date.isoformat()) == ("succeeded", "2026-11-26")
    check = IntegrityCheckRun.objects.get(job_run=outcome.run)
    assert check.passed is False
    assert [(p["check"], p["subject"]) for p in check.problems] == [("error", "DataError")]
    assert check.problems[0]["message"].startswith("the integrity check could not run: DataError: division by zero")
    assert _metric(client, "engine_integrity_check_failed") == "1.0"
