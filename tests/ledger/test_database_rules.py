"""The ledger's rules hold in PostgreSQL itself: raw SQL cannot unbalance, edit or delete the journal."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from ledger.models import Account, AccountKind, Entry, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from ledger.services import account_get_or_create, credit, debit, ledger_post, ledger_reverse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def accounts():
    return (
        account_get_or_create(kind=AccountKind.ADVANCE_RECEIVABLE, owner="PAYCO-T"),
        account_get_or_create(kind=AccountKind.FEE_INCOME),
    )


def _raw_journal(cursor, reference: str) -> int:
    cursor.execute(
        "INSERT INTO ledger_journaltransaction (kind, description, business_date, reference, created_at)"
        " VALUES ('test', '', '2026-11-25', %s, now()) RETURNING id",
        [reference],
    )
    return cursor.fetchone()[0]


def _raw_entry(cursor, journal_id: int, account_id: int, direction: str, amount: str) -> None:
    cursor.execute(
        "INSERT INTO ledger_entry (transaction_id, account_id, direction, amount, currency)"
        " VALUES (%s, %s, %s, %s, 'CNY')",
        [journal_id, account_id, direction, amount],
    )


def test_balanced_posting_commits_and_updates_totals(accounts):
    receivable, income = accounts
    ledger_post(kind="t", reference="t:1", business_date=date(2026, 11, 25),
                legs=[debit(receivable, Decimal("10.00")), credit(income, Decimal("10.00"))])
    receivable.refresh_from_db()
    income.refresh_from_db()
    assert (receivable.debits_posted, receivable.credits_posted) == (Decimal("10.00"), Decimal("0.00"))
    assert receivable.balance == Decimal("10.00") and income.balance == Decimal("10.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_unbalanced_raw_sql_journal_is_rejected_at_commit(accounts):
    receivable, income = accounts
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            journal_id = _raw_journal(cursor, "raw:unbalanced")
            _raw_entry(cursor, journal_id, receivable.id, "D", "10.00")
            _raw_entry(cursor, journal_id, income.id, "C", "9.99")
    assert JournalTransaction.objects.count() == 0
    assert Entry.objects.count() == 0
    receivable.refresh_from_db()
    assert receivable.debits_posted == Decimal("0.00")


def test_single_entry_journal_is_rejected_at_commit(accounts):
    receivable, _ = accounts
    with pytest.raises(IntegrityError, match="at least 2 are required"):
        with transaction.atomic(), connection.cursor() as cursor:
            journal_id = _raw_journal(cursor, "raw:single")
            _raw_entry(cursor, journal_id, receivable.id, "D", "10.00")
    assert JournalTransaction.objects.count() == 0


def test_non_positive_amount_is_rejected(accounts):
    receivable, income = accounts
    with pytest.raises(IntegrityError, match="ledger_entry_amount_positive"):
        with transaction.atomic(), connection.cursor() as cursor:
            journal_id = _raw_journal(cursor, "raw:negative")
            _raw_entry(cursor, journal_id, receivable.id, "D", "-10.00")
            _raw_entry(cursor, journal_id, income.id, "C", "-10.00")


def _posted(accounts) -> JournalTransaction:
    receivable, income = accounts
    return ledger_post(kind="t", reference="t:posted", business_date=date(2026, 11, 25),
                       legs=[debit(receivable, Decimal("5.00")), credit(income, Decimal("5.00"))])


def test_update_of_posted_entry_is_rejected_by_postgres(accounts):
    journal = _posted(accounts)
    entry_id = journal.entries.order_by("id").first().id
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_entry SET amount = 500 WHERE id = %s", [entry_id])
    assert Entry.objects.get(id=entry_id).amount == Decimal("5.00")


def test_delete_of_posted_entry_is_rejected_by_postgres(accounts):
    journal = _posted(accounts)
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM ledger_entry WHERE transaction_id = %s", [journal.id])
    assert Entry.objects.filter(transaction=journal).count() == 2


def test_update_of_journal_transaction_is_rejected_by_postgres(accounts):
    journal = _posted(accounts)
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_journaltransaction SET business_date = '2020-01-01' WHERE id = %s",
                           [journal.id])


def test_entries_cannot_be_appended_to_an_earlier_transaction(accounts):
    receivable, income = accounts
    journal = _posted(accounts)
    with pytest.raises(IntegrityError, match="same database transaction"):
        with transaction.atomic(), connection.cursor() as cursor:
            _raw_entry(cursor, journal.id, receivable.id, "D", "1.00")
            _raw_entry(cursor, journal.id, income.id, "C", "1.00")
    assert journal.entries.count() == 2


def test_reversal_restores_balances_and_keeps_the_original(accounts):
    receivable, income = accounts
    journal = _posted(accounts)
    ledger_reverse(journal=journal, reference="t:posted:reversal", business_date=date(2026, 11, 26))
    receivable.refresh_from_db()
    assert receivable.balance == Decimal("0.00")
    assert (receivable.debits_posted, receivable.credits_posted) == (Decimal("5.00"), Decimal("5.00"))
    assert journal.entries.count() == 2
    assert journal.reversed_by.reference == "t:posted:reversal"


def test_settlement_account_cannot_be_overdrawn(accounts):
    settlement = account_get_or_create(kind=AccountKind.SETTLEMENT, owner="PAYCO-T")
    receivable, _ = accounts
    with pytest.raises(IntegrityError, match="ledger_account_no_overdraft"):
        ledger_post(kind="t", reference="t:overdraw", business_date=date(2026, 11, 25),
                    legs=[debit(settlement, Decimal("1.00")), credit(receivable, Decimal("1.00"))])
    assert Account.objects.get(pk=settlement.pk).debits_posted == Decimal("0.00")
