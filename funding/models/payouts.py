"""Payout instructions: the beneficiary payments a company asked for in an advance.

Funding owns the instruction and its state (the advance request writes it, in the same round trip as the holds);
settlement executes it: it routes each payout to a channel, records the attempts and drives the state through
the transitions below. Funding sees the attempts only through `PayoutAttemptView`, a database view whose
definition settlement provides (the dependency points from settlement to funding, never back).
"""

from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models.advances import Advance
from funding.models.common import MONEY, new_public_id


def new_payout_id() -> str:
    return new_public_id("po")


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown"
    MANUAL_REVIEW = "manual_review", "Manual review"
    CANCELLED = "cancelled", "Cancelled"
    # Paid, then sent back by the beneficiary's bank (退汇, contract 1.7): the money is back at the bank.
    RETURNED = "returned", "Returned"


FINAL_PAYOUT_STATES = [PayoutStatus.SUCCEEDED, PayoutStatus.FAILED, PayoutStatus.CANCELLED, PayoutStatus.RETURNED]


def advance_disbursement_open_sql(alias: str) -> str:
    """SQL that is true while the advance `alias` (a funding_advance row) may still owe more than it shows: one
    of its payouts is not final, or a succeeded payout is not yet taken into the advance's disbursed amount (its
    outcome committed, advance_finish_disbursement not yet run). Such an advance is never marked repaid."""
    final = ", ".join(f"'{s}'" for s in FINAL_PAYOUT_STATES)
    return (
        f"(EXISTS (SELECT 1 FROM funding_payout op WHERE op.advance_id = {alias}.id AND op.status NOT IN ({final}))"
        f" OR {alias}.disbursed_amount <> (SELECT coalesce(sum(sp.amount), 0) FROM funding_payout sp"
        f" WHERE sp.advance_id = {alias}.id AND sp.status = '{PayoutStatus.SUCCEEDED.value}'))"
    )


class Payout(FSMModelMixin, models.Model):
    """One beneficiary payment of an advance: the company's own funds first, then the credit line."""

    # Unique by a constraint, not unique=True: the latter adds a LIKE index no query uses.
    public_id = models.CharField(max_length=40, default=new_payout_id, editable=False)
    # No index of its own: the unique (advance, external_id) and (advance, sequence) indexes lead with it.
    advance = models.ForeignKey(Advance, on_delete=models.PROTECT, related_name="payouts", db_index=False)
    sequence = models.PositiveIntegerField()
    external_id = models.CharField(max_length=64)
    beneficiary_name = models.CharField(max_length=100)
    account_no = models.CharField(max_length=32)
    bank_code = models.CharField(max_length=16)
    amount = models.DecimalField(**MONEY)
    own_funds_amount = models.DecimalField(**MONEY, default=0)
    advanced_amount = models.DecimalField(**MONEY, default=0)
    status = FSMField(default=PayoutStatus.PENDING, choices=PayoutStatus.choices, protected=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    failure_code = models.CharField(max_length=48, blank=True, default="")
    # When the funds were handed to a channel (and the receivable posted); cleared when they come back.
    funds_out = models.BooleanField(default=False)
    # A payout no channel can take right now (service hours, non-business day) waits until then.
    dispatch_after = models.DateTimeField(null=True, blank=True)
    # The business date the funds left the bank (handed to the channel of the attempt that paid): the fee
    # counts days from here to the advance's due date (contract 1.7).
    value_date = models.DateField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="funding_payout_public_id_unique"),
            models.UniqueConstraint(
                fields=["advance", "external_id"], name="funding_payout_external_id_unique"
            ),
            models.UniqueConstraint(fields=["advance", "sequence"], name="funding_payout_sequence_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="funding_payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=F("own_funds_amount") + F("advanced_amount"))
                & Q(own_funds_amount__gte=0)
                & Q(advanced_amount__gte=0),
                name="funding_payout_split_adds_up",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"]),
            # The dispatch queue: a batch claims the oldest due pending payouts of any advance (FIFO by id); the
            # partial index holds only pending rows, so the claim never walks the finished ones.
            models.Index(fields=["id"], condition=Q(status=PayoutStatus.PENDING), name="funding_payout_pending"),
            # One advance's own pending payouts, oldest first: the first thing every dispatch task reads. Without
            # it the planner may walk the queue's index above with the advance as a filter, O(queue) per task.
            models.Index(
                fields=["advance_id", "id"], condition=Q(status=PayoutStatus.PENDING), name="funding_payout_pending_own"
            ),
        ]
        ordering = ["advance_id", "sequence"]

    def __str__(self) -> str:
        return self.public_id

    @transition(field=status, source=PayoutStatus.PENDING, target=PayoutStatus.PROCESSING)
    def start_attempt(self) -> None:
        pass

    @transition(
        field=status, source=[PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN], target=PayoutStatus.PENDING
    )
    def await_retry(self) -> None:
        """An explicit, retryable failure: the payout waits for a new attempt on another channel."""

    @transition(
        field=status,
        source=[PayoutStatus.PROCESSING, PayoutStatus.UNKNOWN, PayoutStatus.MANUAL_REVIEW],
        target=PayoutStatus.SUCCEEDED,
    )
    def mark_succeeded(self) -> None:
        pass

    @transition(
        field=status,
        source=[
            PayoutStatus.PENDING,
            PayoutStatus.PROCESSING,
            PayoutStatus.UNKNOWN,
            PayoutStatus.MANUAL_REVIEW,
        ],
        target=PayoutStatus.FAILED,
    )
    def mark_failed(self) -> None:
        pass

    @transition(field=status, source=PayoutStatus.PROCESSING, target=PayoutStatus.UNKNOWN)
    def mark_unknown(self) -> None:
        pass

    @transition(field=status, source=PayoutStatus.UNKNOWN, target=PayoutStatus.MANUAL_REVIEW)
    def send_to_manual_review(self) -> None:
        pass

    @transition(field=status, source=PayoutStatus.PENDING, target=PayoutStatus.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=status, source=PayoutStatus.SUCCEEDED, target=PayoutStatus.RETURNED)
    def mark_returned(self) -> None:
        """The beneficiary's bank sent the money back (statement import or staff, four eyes)."""


class PayoutAttemptView(models.Model):
    """An attempt as a payment company sees it (serial, channel, status, failure code): read-only.

    The view `funding_payout_attempt_view` is created empty by funding's migrations and redefined by
    settlement's over its attempts and channels, so that funding's representations and SQL read attempts
    without knowing settlement's tables.
    """

    payout = models.ForeignKey(Payout, on_delete=models.DO_NOTHING, related_name="attempt_views")
    number = models.PositiveSmallIntegerField()
    serial = models.CharField(max_length=64)
    channel = models.CharField(max_length=32)
    status = models.CharField(max_length=16)
    failure_code = models.CharField(max_length=48)

    class Meta:
        managed = False
        db_table = "funding_payout_attempt_view"
        ordering = ["payout", "number"]

    def __str__(self) -> str:
        return self.serial
