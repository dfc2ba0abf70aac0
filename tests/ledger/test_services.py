"""ledger.services: posting validation, idempotent references, holds on customer accounts."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from ledger.models import AccountKind, JournalTransaction
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from ledger.services import (
    LedgerError,
    account_get_or_create,
    account_hold,
    account_release_hold,
    credit,
    debit,
    ledger_post,
)

pytestmark = pytest.mark.django_db

D = Decimal
DAY = date(2026, 11, 25)


@pytest.fixture
def accounts():
    return (account_get_or_create(kind=AccountKind.BANK_CLEARING),
            account_get_or_create(kind=AccountKind.SETTLEMENT, owner="PAYCO-L"))


def test_posting_quantizes_half_up_and_drops_zero_legs(accounts):
    clearing, settlement = accounts
    journal = ledger_post(kind="t", reference="t:1", business_date=DAY,
                          legs=[debit(clearing, D("10.005")), credit(settlement, D("10.005")),
                                debit(clearing, D("0")), credit(settlement, D("0.00"))])
    entries = sorted(journal.entries.values_list("direction", "amount"))
    assert entries == [("C", D("10.01")), ("D", D("10.01"))]
    assert account_balance(kind=AccountKind.SETTLEMENT, owner="PAYCO-L") == D("10.01")
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


@pytest.mark.parametrize(
    "legs",
    [
        lambda c, s: [debit(c, D("1.00")), credit(s, D("0.99"))],
        lambda c, s: [debit(c, D("-1.00")), credit(s, D("-1.00"))],
        lambda c, s: [debit(c, D("1.00"))],
        lambda c, s: [debit(c, D("0.00")), credit(s, D("0.00"))],
    ],
)
def test_bad_postings_are_refused_before_the_database(accounts, legs):
    with pytest.raises(LedgerError):
        ledger_post(kind="t", reference="t:bad", business_date=DAY, legs=legs(*accounts))
    assert not JournalTransaction.objects.exists()


def test_a_reference_posts_once(accounts):
    clearing, settlement = accounts
    ledger_post(kind="t", reference="t:once", business_date=DAY,
                legs=[debit(clearing, D("5.00")), credit(settlement, D("5.00"))])
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger_post(kind="t", reference="t:once", business_date=DAY,
                    legs=[debit(clearing, D("5.00")), credit(settlement, D("5.00"))])
    assert account_balance(kind=AccountKind.SETTLEMENT, owner="PAYCO-L") == D("5.00")


def test_holds_never_exceed_the_balance(accounts):
    clearing, settlement = accounts
    ledger_post(kind="t", reference="t:dep", business_date=DAY,
                legs=[debit(clearing, D("100.00")), credit(settlement, D("100.00"))])
    assert account_hold(account=settlement, amount=D("60.00"))
    assert not account_hold(account=settlement, amount=D("40.01"))
    assert account_hold(account=settlement, amount=D("40.00"))
    settlement.refresh_from_db()
    assert (settlement.debits_pending, settlement.available) == (D("100.00"), D("0.00"))
    with pytest.raises(LedgerError):
        account_release_hold(account=settlement, amount=D("100.01"))
    account_release_hold(account=settlement, amount=D("100.00"))
    settlement.refresh_from_db()
    assert settlement.available == D("100.00")
    # Posting against held funds is refused by the no-overdraft CHECK.
    assert account_hold(account=settlement, amount=D("100.00"))
    with pytest.raises(IntegrityError, match="ledger_account_no_overdraft"), transaction.atomic():
        ledger_post(kind="t", reference="t:spend", business_date=DAY,
                    legs=[debit(settlement, D("0.01")), credit(clearing, D("0.01"))])
