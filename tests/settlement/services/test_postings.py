"""One journal per payout fact, the same from the single-payout path and the set-based one (postings.*_posting)."""

from decimal import Decimal

import pytest

from ledger.models import Entry, JournalTransaction
from settlement.models import PayoutAttempt
from settlement.services.disbursement import advance_dispatch, attempt_apply, payout_claim_next

pytestmark = pytest.mark.django_db(transaction=True)


def _legs(reference: str) -> list[tuple[str, str, Decimal]]:
    return sorted(
        Entry.objects.filter(transaction__reference=reference).values_list("account__code", "direction", "amount")
    )


def _priced(channels):
    for channel in channels.values():
        channel.fee_fixed, channel.fee_bps = Decimal("1.00"), Decimal("10")  # 1.00 + 0.1%
        channel.save(update_fields=["fee_fixed", "fee_bps"])


def test_a_confirmation_carries_the_channel_fee_in_one_journal_on_the_batch_path(advance_factory, channels):
    _priced(channels)
    advance = advance_factory("250.00", "100.00")
    assert advance_dispatch(advance_id=advance.pk) == 2
    attempt = PayoutAttempt.objects.get(payout__amount=Decimal("250.00"))
    code = attempt.channel.code
    assert attempt.fee == Decimal("1.25")
    assert _legs(f"{attempt.serial}:confirmed") == sorted([
        (f"{code}:payouts_in_transit:CNY", "D", Decimal("250.00")),
        ("bank:channel_cost:CNY", "D", Decimal("1.25")),
        (f"{code}:channel_clearing:CNY", "C", Decimal("251.25")),
    ])
    assert JournalTransaction.objects.filter(kind="payout.confirmed").count() == 2
    assert not JournalTransaction.objects.filter(reference__endswith=":fee").exclude(kind="advance.fee").exists()


def test_the_single_payout_path_posts_the_same_journal(advance_factory, channels):
    _priced(channels)
    advance = advance_factory("250.00")
    claim = payout_claim_next(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get(pk=claim.attempt_id)
    code = attempt.channel.code
    assert _legs(f"{attempt.serial}:out") == sorted([
        (f"{advance.company.code}:advance_receivable:CNY", "D", Decimal("250.00")),
        (f"{code}:payouts_in_transit:CNY", "C", Decimal("250.00")),
    ])
    attempt_apply(attempt_id=attempt.pk, status="succeeded", code="", source="submit")
    assert _legs(f"{attempt.serial}:confirmed") == sorted([
        (f"{code}:payouts_in_transit:CNY", "D", Decimal("250.00")),
        ("bank:channel_cost:CNY", "D", Decimal("1.25")),
        (f"{code}:channel_clearing:CNY", "C", Decimal("251.25")),
    ])


def test_a_free_channel_confirmation_has_no_fee_leg(advance_factory, channels):
    for channel in channels.values():
        channel.fee_fixed, channel.fee_bps = Decimal("0.00"), Decimal("0")
        channel.save(update_fields=["fee_fixed", "fee_bps"])
    advance = advance_factory("100.00")
    assert advance_dispatch(advance_id=advance.pk) == 1
    attempt = PayoutAttempt.objects.get()
    assert attempt.fee == Decimal("0.00")
    assert [(d, a) for _, d, a in _legs(f"{attempt.serial}:confirmed")] == [
        ("C", Decimal("100.00")), ("D", Decimal("100.00"))]
