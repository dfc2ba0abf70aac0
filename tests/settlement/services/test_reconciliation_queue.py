"""The reconciliation work queue: exceptions opened by the channel statements, resolved by one staff member
with a reason, written off under four eyes with a balanced posting; the console counts open ones only."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from funding.errors import FourEyesViolation, InvalidState, ValidationFailed
from funding.models import AuditEvent
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_balance, trial_balance
from settlement.adapters.base import StatementRow
from settlement.models import PayoutAttempt, ReconciliationException
from settlement.selectors import reconciliation_exceptions_open_count
from settlement.services.disbursement import advance_dispatch
from settlement.services.reconciliation import reconciliation_report, statement_import
from settlement.services.reconciliation_queue import (
    reconciliation_exception_resolve,
    reconciliation_exception_write_off_approve,
    reconciliation_exception_write_off_propose,
    reconciliation_exception_write_off_reject,
)
from tests.factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exceptions(advance_factory, channels):
    """Three payouts paid through BEPS and a statement with a wrong amount, a missing line and a stranger."""
    advance = advance_factory("100.00", "200.00", "300.00")
    advance_dispatch(advance_id=advance.pk)
    a1, a2, a3 = PayoutAttempt.objects.order_by("payout__sequence")
    assert {a.channel.code for a in (a1, a2, a3)} == {"BEPS"}
    rows = [
        StatementRow(serial=a1.serial, amount=Decimal("100.00"), status="succeeded"),
        StatementRow(serial=a2.serial, amount=Decimal("200.01"), status="succeeded"),
        StatementRow(serial="po_stranger-1", amount=Decimal("5.00"), status="succeeded"),
        StatementRow(serial="po_failed-1", amount=Decimal("7.00"), status="failed"),
    ]
    statement_import(channel=channels["BEPS"], statement_date=timezone.localdate(), rows=rows)
    return {"a1": a1, "a2": a2, "a3": a3, "rows": rows, "channel": channels["BEPS"]}


def _by_reference() -> dict[str, ReconciliationException]:
    return {e.reference: e for e in ReconciliationException.objects.all()}


def test_statement_import_opens_one_exception_per_difference_with_its_adjustment(exceptions):
    a2, a3 = exceptions["a2"], exceptions["a3"]
    got = {
        ref: (e.source, e.classification, e.status, e.statement_amount, e.ledger_amount, e.adjustment,
              e.ledger_account.code)
        for ref, e in _by_reference().items()
    }
    assert got == {
        # We credited the channel clearing 200.00; the channel says 200.01: a write-off credits 0.01 more.
        a2.serial: ("channel_statement", "amount_mismatch", "open", Decimal("200.01"), Decimal("200.00"),
                    Decimal("-0.01"), "BEPS:channel_clearing:CNY"),
        # We booked 300.00 paid, the channel shows nothing: a write-off debits it back.
        a3.serial: ("channel_statement", "missing_in_statement", "open", None, Decimal("300.00"),
                    Decimal("300.00"), "BEPS:channel_clearing:CNY"),
        "po_stranger-1": ("channel_statement", "missing_on_our_side", "open", Decimal("5.00"), None,
                          Decimal("-5.00"), "BEPS:channel_clearing:CNY"),
        # A failed transfer we do not know moved no money: nothing to post.
        "po_failed-1": ("channel_statement", "missing_on_our_side", "open", Decimal("7.00"), None,
                        Decimal("0.00"), "BEPS:channel_clearing:CNY"),
    }
    ids = sorted(ReconciliationException.objects.values_list("id", flat=True))
    # The same file again changes nothing.
    statement_import(channel=exceptions["channel"], statement_date=timezone.localdate(), rows=exceptions["rows"])
    assert sorted(ReconciliationException.objects.values_list("id", flat=True)) == ids
    assert reconciliation_exceptions_open_count() == 4


def test_a_corrected_statement_closes_what_it_now_matches(exceptions):
    a1, a2, a3 = exceptions["a1"], exceptions["a2"], exceptions["a3"]
    corrected = [
        StatementRow(serial=a1.serial, amount=Decimal("100.00"), status="succeeded"),
        StatementRow(serial=a2.serial, amount=Decimal("200.00"), status="succeeded"),
        StatementRow(serial=a3.serial, amount=Decimal("300.00"), status="succeeded"),
        StatementRow(serial="po_stranger-1", amount=Decimal("5.00"), status="succeeded"),
    ]
    statement_import(channel=exceptions["channel"], statement_date=timezone.localdate(), rows=corrected)
    got = {ref: (e.status, e.resolved_by_label, e.resolution_reason) for ref, e in _by_reference().items()}
    assert got == {
        a2.serial: ("resolved", "reconciliation", "matched by a later import of the statement"),
        a3.serial: ("resolved", "reconciliation", "matched by a later import of the statement"),
        "po_stranger-1": ("open", "", ""),
        "po_failed-1": ("resolved", "reconciliation", "no longer in the statement after a later import"),
    }
    assert reconciliation_exceptions_open_count() == 1
    report = reconciliation_report(statement_date=timezone.localdate())
    assert report["open_exceptions"] == 1
    # Only what is still open is an exception of the day; the rest is history.
    assert [(e["serial"], e["status"]) for e in report["exceptions"]] == [("po_stranger-1", "open")]
    assert report["closed_exceptions"] == []  # what matched, or left the statement, is no exception at all


def test_resolve_needs_a_reason_and_records_who_when_why(exceptions):
    staff = staff_user()
    exception = _by_reference()["po_stranger-1"]
    with pytest.raises(ValidationFailed) as refused:
        reconciliation_exception_resolve(exception_id=exception.pk, actor=staff, reason="  ")
    assert refused.value.details == {"reason": ["A reason is required."]}
    exception.refresh_from_db()
    assert exception.status == "open" and AuditEvent.objects.filter(action__startswith="reconciliation").count() == 0

    reconciliation_exception_resolve(exception_id=exception.pk, actor=staff, reason="test transfer of the channel")
    exception.refresh_from_db()
    assert (exception.status, exception.resolved_by_id, exception.resolved_by_label, exception.resolution_reason) == (
        "resolved", staff.pk, staff.username, "test transfer of the channel")
    assert exception.resolved_at is not None and exception.write_off_journal is None
    audit = AuditEvent.objects.get(action="reconciliation.exception.resolved")
    assert (audit.actor_id, audit.reason, audit.before, audit.after) == (
        staff.pk, "test transfer of the channel", {"status": "open"}, {"status": "resolved"})
    assert reconciliation_exceptions_open_count() == 3
    report = reconciliation_report(statement_date=timezone.localdate())
    assert (report["open_exceptions"], len(report["exceptions"])) == (3, 3)
    assert [(e["serial"], e["status"]) for e in report["closed_exceptions"]] == [("po_stranger-1", "resolved")]
    with pytest.raises(InvalidState):
        reconciliation_exception_resolve(exception_id=exception.pk, actor=staff, reason="again")
    with pytest.raises(InvalidState):
        reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=staff, reason="too late")


def test_write_off_under_four_eyes_posts_the_difference(exceptions):
    maker, checker = staff_user(), staff_user()
    exception = _by_reference()[exceptions["a2"].serial]
    clearing_before = account_balance(kind=AccountKind.CHANNEL_CLEARING, owner="BEPS")
    journals_before = JournalTransaction.objects.count()

    reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=maker, reason="channel rounding")
    with pytest.raises(FourEyesViolation) as refused:
        reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=maker)
    assert refused.value.code == "four_eyes_violation"
    with pytest.raises(FourEyesViolation):
        reconciliation_exception_write_off_reject(exception_id=exception.pk, checker=maker, reason="no")
    exception.refresh_from_db()
    assert (exception.status, exception.written_off_by_id, exception.write_off_proposed_by_id) == (
        "open", None, maker.pk)
    assert JournalTransaction.objects.count() == journals_before
    assert not Account.objects.filter(kind=AccountKind.RECONCILIATION_DIFFERENCE).exists()
    # The database refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationException.objects.filter(pk=exception.pk).update(written_off_by=maker)

    reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=checker, reason="agreed")
    exception.refresh_from_db()
    assert (exception.status, exception.written_off_by_id) == ("written_off", checker.pk)
    journal = exception.write_off_journal
    assert (journal.kind, journal.reference) == ("reconciliation.write_off", f"recon_write_off:{exception.pk}")
    assert sorted(journal.entries.values_list("account__code", "direction", "amount")) == [
        ("BEPS:channel_clearing:CNY", "C", Decimal("0.01")),
        ("bank:reconciliation_difference:CNY", "D", Decimal("0.01")),
    ]
    assert account_balance(kind=AccountKind.RECONCILIATION_DIFFERENCE) == Decimal("0.01")
    assert account_balance(kind=AccountKind.CHANNEL_CLEARING, owner="BEPS") == clearing_before - Decimal("0.01")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    audit = AuditEvent.objects.get(action="reconciliation.exception.written_off")
    assert (audit.actor_id, audit.after) == (checker.pk, {
        "status": "written_off", "maker": maker.username, "adjustment": "-0.01",
        "journal": f"recon_write_off:{exception.pk}"})
    assert reconciliation_exceptions_open_count() == 3
    with pytest.raises(InvalidState):
        reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=checker)


def test_write_off_of_a_missing_line_debits_the_clearing_back_and_a_zero_difference_posts_nothing(exceptions):
    maker, checker = staff_user(), staff_user()
    missing = _by_reference()[exceptions["a3"].serial]
    reconciliation_exception_write_off_propose(exception_id=missing.pk, maker=maker, reason="never paid")
    reconciliation_exception_write_off_approve(exception_id=missing.pk, checker=checker)
    missing.refresh_from_db()
    assert sorted(missing.write_off_journal.entries.values_list("account__code", "direction", "amount")) == [
        ("BEPS:channel_clearing:CNY", "D", Decimal("300.00")),
        ("bank:reconciliation_difference:CNY", "C", Decimal("300.00")),
    ]
    failed = _by_reference()["po_failed-1"]
    journals = JournalTransaction.objects.count()
    reconciliation_exception_write_off_propose(exception_id=failed.pk, maker=maker, reason="not ours")
    reconciliation_exception_write_off_approve(exception_id=failed.pk, checker=checker)
    failed.refresh_from_db()
    assert (failed.status, failed.write_off_journal) == ("written_off", None)
    assert JournalTransaction.objects.count() == journals
    assert account_balance(kind=AccountKind.RECONCILIATION_DIFFERENCE) == Decimal("-300.00")


def test_checker_rejects_and_the_exception_stays_open_for_another_proposal(exceptions):
    maker, checker = staff_user(), staff_user()
    exception = _by_reference()["po_stranger-1"]
    with pytest.raises(InvalidState):
        reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=checker)
    reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=maker, reason="lost")
    with pytest.raises(InvalidState):
        reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=checker, reason="twice")
    reconciliation_exception_write_off_reject(exception_id=exception.pk, checker=checker, reason="ask the channel")
    exception.refresh_from_db()
    assert (exception.status, exception.write_off_proposed_by, exception.write_off_reason) == ("open", None, "")
    assert AuditEvent.objects.get(action="reconciliation.exception.write_off_rejected").reason == "ask the channel"
    reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=checker, reason="channel agrees")
    reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=maker)
    exception.refresh_from_db()
    assert exception.status == "written_off"


def _role_client(role: str, username: str) -> tuple[Client, User]:
    user = User.objects.create_user(username, password="correct horse battery", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def _buttons(html: str, pk: int) -> set[str]:
    row = re.search(rf'<tr data-exception="{pk}">(.*?)</tr>', html, re.S).group(1)
    return set(re.findall(r'data-action="([a-z_]+)"', row))


def test_console_counts_open_only_and_works_the_queue_through_the_admin(exceptions):
    by_ref = _by_reference()
    finance, finance_user = _role_client("finance", "fin")
    approver, _ = _role_client("credit_approver", "boss")
    reconciliation_exception_resolve(exception_id=by_ref["po_failed-1"].pk, actor=finance_user, reason="not ours")

    dashboard = finance.get(reverse("console:dashboard")).content.decode()
    assert 'Open reconciliation exceptions (<span data-count="reconciliation-open">3</span>)' in dashboard
    assert "po_failed-1" not in dashboard
    queue = finance.get(reverse("console:queues")).content.decode()
    assert '<span data-count="reconciliation-open">3</span> open' in queue
    stranger = by_ref["po_stranger-1"].pk
    assert _buttons(queue, stranger) == {"resolve", "propose_write_off"}
    assert _buttons(approver.get(reverse("console:queues")).content.decode(), stranger) == set()

    changelist = reverse("admin:settlement_reconciliationexception_changelist")
    form = finance.post(changelist, {"action": "propose_write_off", "_selected_action": [stranger]})
    assert form.status_code == 200 and b'name="apply"' in form.content
    done = finance.post(changelist, {"action": "propose_write_off", "_selected_action": [stranger], "apply": "1",
                                     "reason": "channel test transfer", "next": reverse("console:queues")})
    assert done.status_code == 302 and done.url == reverse("console:queues")
    queue = approver.get(reverse("console:queues")).content.decode()
    assert _buttons(queue, stranger) == {"approve_write_off", "reject_write_off"}
    # The maker's own approval is not even offered; a crafted POST changes nothing.
    finance.post(changelist, {"action": "approve_write_off", "_selected_action": [stranger], "apply": "1",
                              "reason": ""})
    assert ReconciliationException.objects.get(pk=stranger).status == "open"
    approver.post(changelist, {"action": "approve_write_off", "_selected_action": [stranger], "apply": "1",
                               "reason": "ok"})
    assert ReconciliationException.objects.get(pk=stranger).status == "written_off"
    # The admin list is the queue: open ones unless asked for the history.
    listed = finance.get(changelist).content.decode()
    assert by_ref[exceptions["a2"].serial].reference in listed and "po_stranger-1" not in listed
    assert "po_stranger-1" in finance.get(changelist + "?state=all").content.decode()
    assert reconciliation_exceptions_open_count() == 2


def test_a_corrected_amount_refreshes_the_open_exception_and_withdraws_a_stale_write_off(exceptions):
    maker, checker = staff_user(), staff_user()
    a2 = exceptions["a2"]
    exception = _by_reference()[a2.serial]
    reconciliation_exception_write_off_propose(exception_id=exception.pk, maker=maker, reason="channel rounding")
    corrected = [row if row.serial != a2.serial else StatementRow(serial=a2.serial, amount=Decimal("200.02"),
                                                                  status="succeeded")
                 for row in exceptions["rows"]]
    statement_import(channel=exceptions["channel"], statement_date=timezone.localdate(), rows=corrected)

    exception.refresh_from_db()
    assert (exception.status, exception.statement_amount, exception.adjustment) == (
        "open", Decimal("200.02"), Decimal("-0.02"))
    assert (exception.write_off_proposed_by_id, exception.write_off_reason) == (None, "")
    audit = AuditEvent.objects.get(action="reconciliation.exception.refreshed")
    assert audit.after == {"adjustment": "-0.02", "classification": "amount_mismatch", "write_off_withdrawn": True}
    journals = JournalTransaction.objects.count()
    with pytest.raises(InvalidState):
        reconciliation_exception_write_off_approve(exception_id=exception.pk, checker=checker)
    assert JournalTransaction.objects.count() == journals
