"""Dispatch end to end against the simulated channels (real PostgreSQL, committed transactions)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from funding.models import Advance, AuditEvent, CreditLine, Payout, WebhookEvent
from ledger.models import AccountKind
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from settlement.models import ManualReview, PayoutAttempt, SimulatedChannelTransfer
from settlement.services.disbursement import advance_dispatch, attempts_poll_due
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)

RAW_INSERT = (
    "INSERT INTO settlement_payoutattempt (payout_id, number, serial, channel_id, status, failure_code,"
    " channel_code, decision, routing, amount, fee, created_at, query_count, last_query, resolved_by)"
    " VALUES (%s, (SELECT coalesce(max(number), 0) + 1 FROM settlement_payoutattempt), %s, %s, %s,"
    " '', '', '', '{}', 100, 0, now(), 0, '', '')"
)


def _state(advance):
    advance.refresh_from_db()
    payouts = list(advance.payouts.order_by("sequence"))
    return advance.status, [p.status for p in payouts]


def _balance(kind, owner):
    return account_balance(kind=kind, owner=owner)


def test_happy_path_pays_through_cheapest_channel_and_finishes_the_advance(advance_factory):
    advance = advance_factory("100.00", "200.00")
    assert advance_dispatch(advance_id=advance.pk) == 2
    assert _state(advance) == ("disbursed", ["succeeded", "succeeded"])
    payout = advance.payouts.order_by("sequence").first()
    attempt = payout.attempts.get()
    assert attempt.serial == f"{payout.public_id}-1"
    assert (
        attempt.channel.code == "BEPS" and attempt.status == "succeeded" and attempt.resolved_by == "submit"
    )
    assert attempt.routing["reason"] == "cheapest_eligible" and attempt.routing["channel"] == "BEPS"
    assert attempt.fee == Decimal("0.50")
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "BEPS") == Decimal("0.00")
    # Clearing is credited on confirmation (postings.py): the bank owes the channel 300 + 1.00 fees.
    assert _balance(AccountKind.CHANNEL_CLEARING, "BEPS") == Decimal("-301.00")
    assert _balance(AccountKind.CHANNEL_COST, "") == Decimal("1.00")
    assert _balance(AccountKind.ADVANCE_RECEIVABLE, advance.company.code) == Decimal("300.00")
    line = CreditLine.objects.get(pk=advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("300.00"))
    assert advance.fee == Decimal("0.09")  # 300 x 0.0003 x 1 day
    types = sorted(
        WebhookEvent.objects.exclude(type__startswith="credit_line").values_list("type", flat=True)
    )
    assert types == ["advance.disbursed", "payout.succeeded", "payout.succeeded"]
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []
    # Running it again sends nothing.
    assert advance_dispatch(advance_id=advance.pk) == 0
    assert PayoutAttempt.objects.count() == 2


def test_explicit_retryable_failure_fails_over_to_another_channel(advance_factory, channels):
    channel_configure(channels["BEPS"], failure_rate=1, failure_codes=["BE-ACCT-FROZEN"])
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("disbursed", ["succeeded"])
    first, second = PayoutAttempt.objects.order_by("number")
    assert (first.channel.code, first.status, first.failure_code, first.decision) == (
        "BEPS",
        "failed",
        "account_frozen",
        "failover",
    )
    assert first.channel_code == "BE-ACCT-FROZEN"
    assert (second.channel.code, second.status, second.number) == ("IBPS", "succeeded", 2)
    assert second.serial.endswith("-2") and second.routing["reason"] == "best_recent_success_rate"
    assert second.routing["tried"] == ["BEPS"]
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "BEPS") == Decimal("0.00")
    assert _balance(AccountKind.CHANNEL_CLEARING, "IBPS") == Decimal("-101.00")
    line = CreditLine.objects.get(pk=advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("100.00"))
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_final_failure_releases_the_line_and_charges_nothing(advance_factory, channels):
    channel_configure(channels["BEPS"], failure_rate=1, failure_codes=["BE-ACCT-CLOSED"])
    advance = advance_factory("100.00", "50.00")
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("failed", ["failed", "failed"])
    assert set(Payout.objects.values_list("failure_code", flat=True)) == {"account_closed"}
    assert PayoutAttempt.objects.count() == 2
    line = CreditLine.objects.get(pk=advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("0.00"))
    assert advance.fee == Decimal("0.00")
    assert _balance(AccountKind.ADVANCE_RECEIVABLE, advance.company.code) == Decimal("0.00")
    assert _balance(AccountKind.FEE_RECEIVABLE, advance.company.code) == Decimal("0.00")
    assert WebhookEvent.objects.filter(type="payout.failed").count() == 2


def test_max_attempts_then_final_failure(advance_factory, channels, settings):
    settings.DISBURSEMENT_MAX_ATTEMPTS = 2
    for code, codes in (("BEPS", ["BE-LIMIT"]), ("IBPS", ["IB4001"]), ("HVPS", ["HV0201"])):
        channel_configure(channels[code], failure_rate=1, failure_codes=codes)
    advance = advance_factory("10.00")
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("failed", ["failed"])
    assert list(PayoutAttempt.objects.order_by("number").values_list("channel__code", flat=True)) == [
        "BEPS",
        "IBPS",
    ]
    line = CreditLine.objects.get(pk=advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("0.00"))


def test_unknown_is_never_resent_until_a_query_resolves_it(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("disbursing", ["unknown"])
    attempt = PayoutAttempt.objects.get()
    assert attempt.status == "unknown" and attempt.next_query_at is not None
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "BEPS") == Decimal("100.00")
    # Dispatching again, even with the channel now healthy, sends nothing anywhere.
    channel_configure(channels["BEPS"], timeout_rate=0)
    assert advance_dispatch(advance_id=advance.pk) == 0
    assert PayoutAttempt.objects.count() == 1 and SimulatedChannelTransfer.objects.count() == 1
    # Not due yet: nothing queried.
    assert attempts_poll_due() == 0
    assert attempts_poll_due(now=timezone.now() + timedelta(seconds=16)) == 1
    attempt.refresh_from_db()
    assert (attempt.status, attempt.resolved_by, attempt.query_count) == ("succeeded", "query", 1)
    assert _state(advance) == ("disbursed", ["succeeded"])
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "BEPS") == Decimal("0.00")
    assert PayoutAttempt.objects.count() == 1


def test_unmapped_failure_code_is_unknown_not_failure(advance_factory, channels):
    channel_configure(channels["BEPS"], failure_rate=1, failure_codes=["ZZ-NEW-CODE"])
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    assert (attempt.status, attempt.failure_code, attempt.channel_code) == (
        "unknown",
        "unmapped_channel_code",
        "ZZ-NEW-CODE",
    )
    assert _state(advance) == ("disbursing", ["unknown"])
    assert advance_dispatch(advance_id=advance.pk) == 0


def test_unresolved_attempt_goes_to_manual_review_never_to_failed(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)  # the channel never got it
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    # Queries on the schedule answer not_found: still unknown, next query later.
    attempts_poll_due(now=timezone.now() + timedelta(seconds=16))
    attempt.refresh_from_db()
    assert (attempt.status, attempt.last_query, attempt.query_count) == ("unknown", "not_found", 1)
    assert attempt.next_query_at > timezone.now() + timedelta(seconds=20)
    attempts_poll_due(now=attempt.review_due_at + timedelta(seconds=1))
    attempt.refresh_from_db()
    assert attempt.status == "unknown" and attempt.next_query_at is None
    assert _state(advance) == ("disbursing", ["manual_review"])
    review = ManualReview.objects.get()
    assert review.status == "open" and review.attempt_id == attempt.pk
    assert WebhookEvent.objects.filter(type="payout.manual_review").count() == 1
    assert AuditEvent.objects.filter(action="payout.manual_review").count() == 1
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "BEPS") == Decimal("100.00")
    assert advance_dispatch(advance_id=advance.pk) == 0


def test_late_success_is_resolved_by_query(advance_factory, channels):
    channel_configure(channels["BEPS"], late_success_rate=1, late_seconds=0)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("disbursing", ["processing"])
    attempts_poll_due(now=timezone.now() + timedelta(seconds=16))
    assert _state(advance) == ("disbursed", ["succeeded"])


def test_database_refuses_a_second_live_attempt(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    for status in ("processing", "unknown", "succeeded"):
        with pytest.raises(IntegrityError, match="settlement_one_live_attempt_per_payout"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    RAW_INSERT,
                    [attempt.payout_id, f"{attempt.serial}-x{status}", channels["IBPS"].pk, status],
                )
    # A failed attempt beside it is allowed (history), proving the index is partial.
    with connection.cursor() as cursor:
        cursor.execute(
            RAW_INSERT,
            [attempt.payout_id, "raw-failed", channels["IBPS"].pk, "failed"],
        )
    assert PayoutAttempt.objects.count() == 2


def test_crash_after_claim_is_only_ever_queried(advance_factory, channels):
    """The attempt was committed but the worker died before (or while) calling the channel."""
    from settlement.services.disbursement import payout_claim_next

    advance = advance_factory("100.00")
    claim = payout_claim_next(advance_id=advance.pk)
    assert claim.attempt_id is not None
    assert advance_dispatch(advance_id=advance.pk) == 0  # a redelivered task finds nothing to send
    assert SimulatedChannelTransfer.objects.count() == 0
    attempts_poll_due(now=timezone.now() + timedelta(seconds=16))
    attempt = PayoutAttempt.objects.get()
    assert (attempt.status, attempt.last_query) == ("processing", "not_found")
    assert SimulatedChannelTransfer.objects.count() == 0
    assert Advance.objects.get(pk=advance.pk).status == "disbursing"


def test_partially_disbursed_when_one_payout_finally_fails(advance_factory, channels):
    channel_configure(channels["HVPS"], failure_rate=1, failure_codes=["HV0101"])
    advance = advance_factory("100.00", "60000.00")  # the large one can only go through HVPS
    advance_dispatch(advance_id=advance.pk)
    assert _state(advance) == ("partially_disbursed", ["succeeded", "failed"])
    assert (advance.disbursed_amount, advance.fee) == (Decimal("100.00"), Decimal("0.03"))
    line = CreditLine.objects.get(pk=advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("100.00"))
    assert _balance(AccountKind.PAYOUTS_IN_TRANSIT, "HVPS") == Decimal("0.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
