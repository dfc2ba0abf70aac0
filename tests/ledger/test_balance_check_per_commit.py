"""The balance check runs once per COMMIT over every journal the transaction wrote (ledger 0004): whatever the
order, the savepoints or an early check, no unbalanced or short journal commits, and a balanced batch does."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from ledger.models import AccountKind, Entry, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from ledger.services import Posting, account_get_or_create, credit, debit, ledger_post_many

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date(2026, 11, 25)


@pytest.fixture
def accounts():
    return (
        account_get_or_create(kind=AccountKind.ADVANCE_RECEIVABLE, owner="PAYCO-T"),
        account_get_or_create(kind=AccountKind.FEE_INCOME),
    )


def _journal(cursor, reference: str) -> int:
    cursor.execute(
        "INSERT INTO ledger_journaltransaction (kind, description, business_date, reference, created_at)"
        " VALUES ('test', '', %s, %s, now()) RETURNING id",
        [DAY, reference],
    )
    return cursor.fetchone()[0]


def _entry(cursor, journal_id: int, account_id: int, direction: str, amount: str) -> None:
    cursor.execute(
        "INSERT INTO ledger_entry (transaction_id, account_id, direction, amount, currency)"
        " VALUES (%s, %s, %s, %s, 'CNY')",
        [journal_id, account_id, direction, amount],
    )


def _balanced(cursor, reference: str, receivable, income, amount: str = "1.00") -> int:
    journal_id = _journal(cursor, reference)
    _entry(cursor, journal_id, receivable.id, "D", amount)
    _entry(cursor, journal_id, income.id, "C", amount)
    return journal_id


def _nothing_committed(receivable) -> None:
    assert JournalTransaction.objects.count() == 0
    assert Entry.objects.count() == 0
    receivable.refresh_from_db()
    assert receivable.debits_posted == Decimal("0.00")


def test_a_batch_of_balanced_journals_commits_with_exact_totals(accounts):
    receivable, income = accounts
    ledger_post_many(postings=[
        Posting(kind="t", reference=f"t:{n}", business_date=DAY,
                legs=[debit(receivable, Decimal("1.01")), credit(income, Decimal("1.01"))])
        for n in range(300)
    ])
    receivable.refresh_from_db()
    assert JournalTransaction.objects.count() == 300 and Entry.objects.count() == 600
    assert receivable.debits_posted == Decimal("303.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_one_unbalanced_journal_among_many_fails_the_commit_and_is_named(accounts):
    receivable, income = accounts
    with pytest.raises(IntegrityError, match=r"journal transaction (\d+) does not balance in CNY") as raised:
        with transaction.atomic(), connection.cursor() as cursor:
            for n in range(5):
                _balanced(cursor, f"ok:{n}", receivable, income)
            bad = _journal(cursor, "bad")
            _entry(cursor, bad, receivable.id, "D", "1.00")
            _entry(cursor, bad, income.id, "C", "0.99")
            for n in range(5, 10):
                _balanced(cursor, f"ok:{n}", receivable, income)
    assert f"journal transaction {bad} " in str(raised.value)
    _nothing_committed(receivable)


def test_a_journal_without_entries_fails_the_commit(accounts):
    receivable, income = accounts
    with pytest.raises(IntegrityError, match="has 0 entries; at least 2 are required"):
        with transaction.atomic(), connection.cursor() as cursor:
            _balanced(cursor, "ok", receivable, income)
            _journal(cursor, "empty")
    _nothing_committed(receivable)


def test_a_journal_written_after_an_early_check_is_checked_at_commit(accounts):
    """SET CONSTRAINTS ALL IMMEDIATE runs the check mid-transaction; what is written afterwards is checked
    again at COMMIT (the mark is set again by the new journal)."""
    receivable, income = accounts
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            _balanced(cursor, "early", receivable, income)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            late = _journal(cursor, "late")
            _entry(cursor, late, receivable.id, "D", "2.00")
            _entry(cursor, late, income.id, "C", "1.00")
    _nothing_committed(receivable)


def test_entries_added_to_an_early_checked_journal_are_checked_again(accounts):
    """Entries extending a journal checked mid-transaction mark it unchecked: the next check covers it."""
    receivable, income = accounts
    with pytest.raises(IntegrityError, match=r"journal transaction (\d+) does not balance") as raised:
        with transaction.atomic(), connection.cursor() as cursor:
            early = _balanced(cursor, "early", receivable, income)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            _entry(cursor, early, receivable.id, "D", "5.00")
            _balanced(cursor, "late", receivable, income)
    assert f"journal transaction {early} " in str(raised.value)
    _nothing_committed(receivable)


def test_an_unbalanced_journal_rolled_back_with_its_savepoint_does_not_block_the_commit(accounts):
    receivable, income = accounts
    with transaction.atomic(), connection.cursor() as cursor:
        _balanced(cursor, "kept", receivable, income, "3.00")
        try:
            with transaction.atomic():
                bad = _journal(cursor, "dropped")
                _entry(cursor, bad, receivable.id, "D", "7.00")
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
    assert list(JournalTransaction.objects.values_list("reference", flat=True)) == ["kept"]
    receivable.refresh_from_db()
    assert receivable.debits_posted == Decimal("3.00")
    assert account_totals_drift() == []


def test_a_check_inside_a_released_savepoint_still_covers_later_journals(accounts):
    """The mark survives RELEASE (SET LOCAL semantics): a check run inside a savepoint that is released, then an
    unbalanced journal, still fails the COMMIT."""
    receivable, income = accounts
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            with transaction.atomic():
                _balanced(cursor, "inner", receivable, income)
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            bad = _journal(cursor, "outer")
            _entry(cursor, bad, receivable.id, "D", "1.00")
            _entry(cursor, bad, income.id, "C", "1.50")
    _nothing_committed(receivable)


def test_the_queries_on_the_ledger_tables_are_planned_without_sequential_scans():
    """A plan cached while the tables looked empty must never scan the journal per new entry (issue 15)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE proname IN ('ledger_apply_totals',"
            " 'ledger_unbalanced_journal') ORDER BY proname"
        )
        assert cursor.fetchall() == [
            ("ledger_apply_totals", ["enable_seqscan=off"]),
            ("ledger_unbalanced_journal", ["enable_seqscan=off"]),
        ]
