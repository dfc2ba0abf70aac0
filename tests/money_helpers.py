"""Test-side drivers for money movements that other issues own (dispatch, repayment), built only from
the services that exist: settlement.services.postings, the Payout/PayoutAttempt FSMs, line counters and
ledger_post.

They move state exactly as the real jobs must (FSM transition + posting + counter in one transaction), so the
invariant checks in the tests exercise the real services underneath.
"""

import itertools
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from funding.models import Advance, AdvanceStatus, AuditEvent, Company, CreditLine, Payout, PayoutStatus, WebhookEvent
from funding.services.line_counters import line_reduce_outstanding
from ledger.models import Account, AccountKind, Entry, JournalTransaction
from ledger.services import account_get_or_create, credit, debit, ledger_post
from settlement.models import Channel, PayoutAttempt
from settlement.services.postings import (
    payout_post_confirmed,
    payout_post_funds_out,
    payout_post_returned,
    payout_release_unsent,
)

_seq = itertools.count(1)


def settlement_deposit(*, company: Company, amount: str | Decimal, business_date: date) -> None:
    """The company's clearing funds arrive: Dr bank clearing, Cr the company's settlement account."""
    ledger_post(
        kind="test.deposit",
        reference=f"test:deposit:{company.code}:{next(_seq)}",
        business_date=business_date,
        legs=[
            debit(account_get_or_create(kind=AccountKind.BANK_CLEARING), Decimal(amount)),
            credit(Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code), Decimal(amount)),
        ],
    )


def _payout_locked(pk: int) -> Payout:
    # Lock only the payout row (not its advance and company): the real services must not rely on such
    # incidental locks to serialise, or a deadlock the tests should find would stay hidden.
    return Payout.objects.select_for_update(of=("self",)).select_related("advance__company").get(pk=pk)


def fake_channel() -> Channel:
    channel, _ = Channel.objects.get_or_create(
        code="IBPS", defaults={"name": "IBPS", "adapter": "tests.fake"})
    return channel


def advance_start_disbursing(*, advance: Advance) -> Advance:
    with transaction.atomic():
        advance = Advance.objects.select_for_update(of=("self",)).get(pk=advance.pk)
        advance.start_disbursing()
        advance.save(update_fields=["status", "updated_at"])
    return advance


def payout_send(*, payout: Payout, business_date: date) -> PayoutAttempt:
    """Hand a pending payout to the channel: a new attempt, the payout in processing, funds out posted."""
    channel = fake_channel()
    with transaction.atomic():
        payout = _payout_locked(payout.pk)
        payout.attempt_count += 1
        attempt = PayoutAttempt.objects.create(
            payout=payout, number=payout.attempt_count, serial=f"{payout.public_id}-{payout.attempt_count}",
            channel=channel, amount=payout.amount,
        )
        payout.start_attempt()
        payout_post_funds_out(payout=payout, channel=channel, serial=attempt.serial,
                              business_date=business_date)
        payout.save(update_fields=["status", "attempt_count", "funds_out", "value_date", "updated_at"])
    return attempt


def payout_resolve(*, payout: Payout, outcome: str, business_date: date) -> Payout:
    """outcome: 'succeeded', 'failed' (final: funds back, holds released) or 'retry' (back and held again)."""
    with transaction.atomic():
        payout = _payout_locked(payout.pk)
        attempt = PayoutAttempt.objects.select_for_update().get(payout=payout, number=payout.attempt_count)
        channel = attempt.channel
        if outcome == "succeeded":
            attempt.mark_succeeded()
            payout.mark_succeeded()
            payout_post_confirmed(payout=payout, channel=channel, serial=attempt.serial, fee=Decimal("0.50"),
                                  business_date=business_date)
        else:
            attempt.mark_failed()
            final = outcome == "failed"
            payout_post_returned(payout=payout, channel=channel, serial=attempt.serial,
                                 business_date=business_date, final=final)
            if final:
                payout.mark_failed()
            else:
                payout.await_retry()
        attempt.save(update_fields=["status"])
        payout.save(update_fields=["status", "funds_out", "updated_at"])
    return payout


def payout_abandon(*, payout: Payout) -> Payout:
    """A pending payout (funds not out) that will never be sent: final failure, holds given back."""
    with transaction.atomic():
        payout = _payout_locked(payout.pk)
        payout.mark_failed()
        payout_release_unsent(payout=payout)
        payout.save(update_fields=["status", "updated_at"])
    return payout


def advance_repay_in_full(*, advance: Advance, business_date: date) -> Advance:
    """The T+1 repayment (回补) of principal and fee from the settlement account.

    No repayment service exists yet (another issue owns it): this is the minimal posting it must make:
    Dr settlement; Cr advance receivable (principal), Cr fee receivable (fee); the line's outstanding falls.
    """
    with transaction.atomic():
        advance = Advance.objects.select_for_update(of=("self",)).select_related("company").get(pk=advance.pk)
        principal = advance.advanced_disbursed - advance.principal_repaid
        fee = advance.fee - advance.fee_repaid
        code = advance.company.code
        ledger_post(
            kind="test.repayment",
            reference=f"{advance.public_id}:repay",
            business_date=business_date,
            legs=[
                debit(Account.objects.get(kind=AccountKind.SETTLEMENT, owner=code), principal + fee),
                credit(Account.objects.get(kind=AccountKind.ADVANCE_RECEIVABLE, owner=code), principal),
                credit(Account.objects.get(kind=AccountKind.FEE_RECEIVABLE, owner=code), fee),
            ],
        )
        line_reduce_outstanding(line_id=advance.credit_line_id, amount=principal)
        advance.principal_repaid += principal
        advance.fee_repaid += fee
        advance.mark_repaid()
        advance.save(update_fields=["status", "principal_repaid", "fee_repaid", "updated_at"])
    return advance


def money_snapshot() -> dict:
    """Every counter and balance a rejected request must leave exactly as it was."""
    return {
        "lines": list(
            CreditLine.objects.order_by("pk").values_list(
                "pk", "status", "reserved", "outstanding", "limit_ceiling", "effective_limit", "version"
            )
        ),
        "accounts": list(
            Account.objects.order_by("pk").values_list(
                "code", "debits_posted", "credits_posted", "debits_pending")
        ),
        "advances": list(Advance.objects.order_by("pk").values_list("pk", "status", "version")),
        "payouts": Payout.objects.count(),
        "journals": JournalTransaction.objects.count(),
        "entries": Entry.objects.count(),
        "events": WebhookEvent.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def expected_reserved(line: CreditLine) -> Decimal:
    """reserved = advanced parts of payouts whose outcome is not yet known (contract 1.7): not sent, sent and
    awaiting the answer, unknown or in manual review; a success draws its part, a final failure releases it."""
    return Payout.objects.filter(
        advance__credit_line=line,
        status__in=[PayoutStatus.PENDING, PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN, PayoutStatus.MANUAL_REVIEW],
    ).aggregate(s=Sum("advanced_amount"))["s"] or Decimal("0.00")


def expected_own_funds_held(company: Company) -> Decimal:
    return Payout.objects.filter(
        advance__company=company,
        advance__status__in=[AdvanceStatus.RESERVED, AdvanceStatus.DISBURSING],
        status__in=[PayoutStatus.PENDING, PayoutStatus.PROCESSING],
        funds_out=False,
    ).aggregate(s=Sum("own_funds_amount"))["s"] or Decimal("0.00")
