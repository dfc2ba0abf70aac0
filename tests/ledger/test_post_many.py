"""ledger.services.ledger_post_many: many journals with two statements, the same rules as ledger_post."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from ledger.models import AccountKind, Entry, JournalTransaction
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from ledger.services import LedgerError, Posting, account_get_or_create, credit, debit, ledger_post, ledger_post_many

pytestmark = pytest.mark.django_db

D = Decimal
DAY = date(2026, 11, 25)


@pytest.fixture
def accounts():
    return (account_get_or_create(kind=AccountKind.BANK_CLEARING),
            account_get_or_create(kind=AccountKind.SETTLEMENT, owner="PAYCO-M"))


def test_many_journals_in_one_statement_quantized_and_without_zero_legs(accounts):
    clearing, settlement = accounts
    postings = [
        Posting(kind="t", reference=f"m:{n}", business_date=DAY, description=f"n{n}",
                legs=[debit(clearing, D("10.005")), credit(settlement, D("10.005")), debit(clearing, D("0"))])
        for n in range(50)
    ]
    with CaptureQueriesContext(connection) as queries:
        ids = ledger_post_many(postings=postings)
    assert len(queries.captured_queries) == 1
    journals = list(JournalTransaction.objects.filter(pk__in=ids).order_by("pk"))
    assert [j.reference for j in journals] == [f"m:{n}" for n in range(50)]
    assert all(j.posted_xact is not None and j.business_date == DAY for j in journals)
    assert sorted(set(Entry.objects.filter(transaction__in=ids).values_list("direction", "amount"))) == [
        ("C", D("10.01")), ("D", D("10.01"))]
    assert Entry.objects.filter(transaction__in=ids).count() == 100
    assert account_balance(kind=AccountKind.SETTLEMENT, owner="PAYCO-M") == D("500.50")
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_an_unbalanced_posting_refuses_the_whole_batch_before_any_sql(accounts):
    clearing, settlement = accounts
    good = Posting(kind="t", reference="g:1", business_date=DAY,
                   legs=[debit(clearing, D("1")), credit(settlement, D("1"))])
    bad = Posting(kind="t", reference="b:1", business_date=DAY,
                  legs=[debit(clearing, D("1")), credit(settlement, D("2"))])
    with CaptureQueriesContext(connection) as queries, pytest.raises(LedgerError):
        ledger_post_many(postings=[good, bad])
    assert queries.captured_queries == [] and JournalTransaction.objects.count() == 0


def test_a_reference_posted_before_is_refused(accounts):
    clearing, settlement = accounts
    ledger_post(kind="t", reference="dup:1", business_date=DAY,
                legs=[debit(clearing, D("1")), credit(settlement, D("1"))])
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger_post_many(postings=[
            Posting(kind="t", reference="new:1", business_date=DAY,
                    legs=[debit(clearing, D("1")), credit(settlement, D("1"))]),
            Posting(kind="t", reference="dup:1", business_date=DAY,
                    legs=[debit(clearing, D("1")), credit(settlement, D("1"))]),
        ])
    assert list(JournalTransaction.objects.values_list("reference", flat=True)) == ["dup:1"]
    assert account_balance(kind=AccountKind.SETTLEMENT, owner="PAYCO-M") == D("1.00")
