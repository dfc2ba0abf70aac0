"""The bank clearing account's own statement lines (BANK_CLEARING_ACCOUNT_NO) are matched against the ledger
movements of the bank clearing account; what does not match becomes a reconciliation exception."""

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from funding.models import BankStatementLine
from funding.services.bank_statements import bank_statement_import
from ledger.models import AccountKind, Entry, JournalTransaction
from ledger.selectors import account_balance, trial_balance
from settlement.models import ReconciliationException
from settlement.services.reconciliation_queue import (
    bank_clearing_reconcile,
    reconciliation_exception_write_off_approve,
    reconciliation_exception_write_off_propose,
)
from tests.factories import company_with_line, staff_user
from tests.settlement.nightly_helpers import statement_csv

pytestmark = pytest.mark.django_db

CLEARING_NO = "31009999000001"
DAY = "2026-11-25"


@pytest.fixture
def clearing_no(settings):
    settings.BANK_CLEARING_ACCOUNT_NO = CLEARING_NO
    return CLEARING_NO


def _run(tmp_path, name: str, *rows: tuple) -> tuple[str, str]:
    path = tmp_path / name
    path.write_bytes(statement_csv(*rows))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_bank_statement", str(path), stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def _exceptions() -> dict[str, tuple]:
    return {
        e.key.split(":")[0] + ":" + e.reference: (e.classification, e.status, e.statement_amount, e.ledger_amount,
                                                  e.adjustment)
        for e in ReconciliationException.objects.order_by("id")
    }


def test_clearing_lines_match_the_ledger_and_the_rest_become_exceptions(business_day, clearing_no, tmp_path):
    company, _ = company_with_line()
    account = company.settlement_account_no
    _run(tmp_path, "company.csv",
         (DAY, account, "C", "150045.00", "CLR1", "China UnionPay clearing", "T+1"),
         (DAY, account, "D", "45.00", "WD1", "", "withdrawal"),
         (DAY, account, "C", "1000.00", "CLR2", "NUCC", "T+1"))
    # The company lines alone: no statement of the clearing account for the day yet, nothing to compare.
    assert ReconciliationException.objects.count() == 0

    summary, _ = _run(tmp_path, "clearing.csv",
                      (DAY, clearing_no, "C", "150045.00", "BCL1", "China UnionPay clearing", ""),
                      (DAY, clearing_no, "D", "45.00", "BCL2", "", ""),
                      (DAY, clearing_no, "C", "777.00", "BCL3", "unknown remitter", ""))
    assert summary == (
        "import_bank_statement clearing.csv: 3 imported (credits 150822.00, debits 45.00), 0 already imported, "
        "0 rejected; clearing reconciliation of 1 value date(s): 2 matched, 2 exception(s) opened, 0 closed"
    )
    # The clearing account's own lines are recorded, never booked.
    assert set(BankStatementLine.objects.filter(account_no=clearing_no).values_list("journal", flat=True)) == {None}
    assert account_balance(kind=AccountKind.BANK_CLEARING) == Decimal("151000.00")
    assert _exceptions() == {
        "bank_line:BCL3": ("unmatched_statement_line", "open", Decimal("777.00"), None, Decimal("777.00")),
        "ledger_entry:stmt:CLR2": ("unmatched_ledger_movement", "open", None, Decimal("1000.00"),
                                   Decimal("-1000.00")),
    }
    entry = ReconciliationException.objects.get(reference="stmt:CLR2").entry
    assert (entry.direction, entry.amount, entry.transaction.reference) == ("D", Decimal("1000.00"), "stmt:CLR2")

    # The same file again: every line skipped, nothing reconciled again, nothing changes.
    summary, _ = _run(tmp_path, "clearing.csv",
                      (DAY, clearing_no, "C", "150045.00", "BCL1", "China UnionPay clearing", ""),
                      (DAY, clearing_no, "D", "45.00", "BCL2", "", ""),
                      (DAY, clearing_no, "C", "777.00", "BCL3", "unknown remitter", ""))
    assert summary.endswith("0 imported (credits 0.00, debits 0.00), 3 already imported, 0 rejected")
    assert ReconciliationException.objects.count() == 2

    # The bank's late line for the 1,000.00 arrives: the ledger movement's exception is closed by the system.
    summary, _ = _run(tmp_path, "late.csv", (DAY, clearing_no, "C", "1000.00", "BCL4", "NUCC", ""))
    assert summary.endswith("clearing reconciliation of 1 value date(s): 3 matched, 0 exception(s) opened, 1 closed")
    assert _exceptions()["ledger_entry:stmt:CLR2"][1] == "resolved"
    assert ReconciliationException.objects.get(reference="stmt:CLR2").resolution_reason == (
        "matched by the clearing reconciliation")

    # Writing the unknown credit off books it on the clearing account against the difference account; the
    # write-off itself is never matched again.
    line_exception = ReconciliationException.objects.get(reference="BCL3")
    reconciliation_exception_write_off_propose(exception_id=line_exception.pk, maker=staff_user(), reason="r")
    reconciliation_exception_write_off_approve(exception_id=line_exception.pk, checker=staff_user())
    line_exception.refresh_from_db()
    assert sorted(line_exception.write_off_journal.entries.values_list("account__code", "direction", "amount")) == [
        ("bank:bank_clearing:CNY", "D", Decimal("777.00")),
        ("bank:reconciliation_difference:CNY", "C", Decimal("777.00")),
    ]
    # Ledger and bank now agree: 150,045.00 - 45.00 + 1,000.00 + 777.00.
    assert account_balance(kind=AccountKind.BANK_CLEARING) == Decimal("151777.00")
    result = bank_clearing_reconcile()
    assert (result.matched, result.opened, result.closed) == (3, 0, 0)
    assert ReconciliationException.objects.filter(status="open").count() == 0
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_matching_is_one_to_one_by_date_direction_and_amount(business_day, clearing_no):
    company, _ = company_with_line()
    account = company.settlement_account_no
    data = statement_csv(
        (DAY, account, "C", "500.00", "A1", "", ""),
        (DAY, account, "C", "500.00", "A2", "", ""),
        ("2026-11-24", account, "C", "80.00", "A3", "", ""),
        # The bank shows one 500.00 credit, and a debit of 500.00 (the wrong side), on the 25th; 80.00 on the 25th
        # instead of the 24th.
        (DAY, CLEARING_NO, "C", "500.00", "B1", "", ""),
        (DAY, CLEARING_NO, "D", "500.00", "B2", "", ""),
        (DAY, CLEARING_NO, "C", "80.00", "B3", "", ""),
    )
    result = bank_statement_import(stream=io.BytesIO(data), filename="mixed.csv", imported_by="test")
    assert result.ok and result.notes == [
        "clearing reconciliation of 1 value date(s): 1 matched, 3 exception(s) opened, 0 closed"]
    second_500 = Entry.objects.get(transaction__reference="stmt:A2", direction="D")
    assert _exceptions() == {
        "bank_line:B2": ("unmatched_statement_line", "open", Decimal("500.00"), None, Decimal("-500.00")),
        "bank_line:B3": ("unmatched_statement_line", "open", Decimal("80.00"), None, Decimal("80.00")),
        "ledger_entry:stmt:A2": ("unmatched_ledger_movement", "open", None, Decimal("500.00"), Decimal("-500.00")),
    }
    assert ReconciliationException.objects.get(reference="stmt:A2").entry_id == second_500.pk
    # The 24th has no line of the clearing account: it is not reconciled (A3 opens nothing) until one comes.
    assert not ReconciliationException.objects.filter(reference="stmt:A3").exists()

    # Writing off the ledger's second 500.00 (the bank never received it) takes it off the clearing account.
    movement = ReconciliationException.objects.get(reference="stmt:A2")
    reconciliation_exception_write_off_propose(exception_id=movement.pk, maker=staff_user(), reason="not received")
    reconciliation_exception_write_off_approve(exception_id=movement.pk, checker=staff_user())
    movement.refresh_from_db()
    assert sorted(movement.write_off_journal.entries.values_list("account__code", "direction", "amount")) == [
        ("bank:bank_clearing:CNY", "C", Decimal("500.00")),
        ("bank:reconciliation_difference:CNY", "D", Decimal("500.00")),
    ]
    assert account_balance(kind=AccountKind.BANK_CLEARING) == Decimal("580.00")  # 500 + 500 + 80 - 500
    assert account_balance(kind=AccountKind.RECONCILIATION_DIFFERENCE) == Decimal("500.00")
    result = bank_clearing_reconcile(value_dates=[date(2026, 11, 25)])
    assert (result.matched, result.opened, result.closed) == (1, 0, 0)
    assert ReconciliationException.objects.count() == 3


def test_without_the_setting_a_clearing_line_is_an_unknown_account(business_day, settings, tmp_path):
    settings.BANK_CLEARING_ACCOUNT_NO = ""
    path = tmp_path / "clearing.csv"
    path.write_bytes(statement_csv((DAY, CLEARING_NO, "C", "1.00", "X1", "", "")))
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 line\\(s\\) rejected"):
        call_command("import_bank_statement", str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue().strip() == f"line 2: account {CLEARING_NO} is not a company settlement or margin account"
    assert BankStatementLine.objects.count() == 0 and JournalTransaction.objects.count() == 0
    assert ReconciliationException.objects.count() == 0
