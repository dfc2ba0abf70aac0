"""How resources look to a payment company: used by the API and, frozen at the time, by webhook events."""

from decimal import Decimal
from typing import Any

from django.utils import timezone


def amount_str(value: Decimal) -> str:
    return f"{value:.2f}"


def decimal_str(value: Decimal) -> str:
    """A multiple or rate with at least 2 fraction digits and no trailing zeros beyond: 1.5000 -> "1.50",
    3 -> "3.00", 1.2345 -> "1.2345"."""
    if value == value.quantize(Decimal("0.01")):
        return f"{value.quantize(Decimal('0.01')):.2f}"
    return format(value.normalize(), "f")


def timestamp_str(value) -> str:
    return timezone.localtime(value).isoformat(timespec="seconds")


def payout_representation(payout, attempts=None) -> dict[str, Any]:
    """`attempts`: the payout's PayoutAttemptView rows when already loaded (else one query)."""
    attempts = attempts if attempts is not None else list(payout.attempt_views.all())
    return {
        "id": payout.public_id,
        "external_id": payout.external_id,
        "status": payout.status,
        "amount": amount_str(payout.amount),
        "own_funds_amount": amount_str(payout.own_funds_amount),
        "advanced_amount": amount_str(payout.advanced_amount),
        "beneficiary_name": payout.beneficiary_name,
        "account_no_last4": payout.account_no[-4:],
        "bank_code": payout.bank_code,
        "failure_code": payout.failure_code or None,
        "value_date": payout.value_date.isoformat() if payout.value_date else None,
        "version": payout.version,
        "attempts": [
            {
                "serial": attempt.serial,
                "channel": attempt.channel,
                "status": attempt.status,
                "failure_code": attempt.failure_code or None,
            }
            for attempt in sorted(attempts, key=lambda a: a.number)
        ],
    }


def advance_representation(advance, payouts=None, *, fresh: bool = False) -> dict[str, Any]:
    """`fresh`: the advance was created in this transaction, so its payouts have no attempts (no query)."""
    if payouts is None:
        payouts = list(advance.payouts.prefetch_related("attempt_views").order_by("sequence"))
    return {
        "id": advance.public_id,
        "external_id": advance.external_id,
        "status": advance.status,
        "currency": advance.currency,
        "amount": amount_str(advance.amount),
        "own_funds_amount": amount_str(advance.own_funds_amount),
        "advanced_amount": amount_str(advance.advanced_amount),
        "disbursed_amount": amount_str(advance.disbursed_amount),
        "returned_amount": amount_str(advance.returned_amount),
        "fee": amount_str(advance.fee),
        "penalty": amount_str(advance.penalty_accrued),
        "business_date": advance.business_date.isoformat(),
        "due_date": advance.due_date.isoformat(),
        "repaid_amount": amount_str(advance.repaid_amount),
        "outstanding_amount": amount_str(advance.outstanding_amount),
        "version": advance.version,
        "created_at": timestamp_str(advance.created_at),
        "updated_at": timestamp_str(advance.updated_at),
        "payouts": [payout_representation(p, [] if fresh else None) for p in payouts],
    }
