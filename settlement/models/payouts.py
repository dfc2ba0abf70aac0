from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models import new_public_id

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


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


FINAL_PAYOUT_STATES = [PayoutStatus.SUCCEEDED, PayoutStatus.FAILED, PayoutStatus.CANCELLED]


class Payout(FSMModelMixin, models.Model):
    """One beneficiary payment of an advance: the company's own funds first, then the credit line."""

    # Unique by a constraint, not unique=True: the latter adds a LIKE index no query uses.
    public_id = models.CharField(max_length=40, default=new_payout_id, editable=False)
    # No index of its own: the unique (advance, external_id) and (advance, sequence) indexes lead with it.
    advance = models.ForeignKey("funding.Advance", on_delete=models.PROTECT, related_name="payouts", db_index=False)
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
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="settlement_payout_public_id_unique"),
            models.UniqueConstraint(
                fields=["advance", "external_id"], name="settlement_payout_external_id_unique"
            ),
            models.UniqueConstraint(fields=["advance", "sequence"], name="settlement_payout_sequence_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="settlement_payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=F("own_funds_amount") + F("advanced_amount"))
                & Q(own_funds_amount__gte=0)
                & Q(advanced_amount__gte=0),
                name="settlement_payout_split_adds_up",
            ),
        ]
        indexes = [models.Index(fields=["status", "updated_at"])]
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


class AttemptStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown"


# At most one attempt per payout may be in one of these states: the database refuses a second.
LIVE_ATTEMPT_STATES = [AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN, AttemptStatus.SUCCEEDED]


class PayoutAttempt(FSMModelMixin, models.Model):
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    serial = models.CharField(max_length=64, unique=True)
    channel = models.ForeignKey("settlement.Channel", on_delete=models.PROTECT, related_name="attempts")
    status = FSMField(default=AttemptStatus.PROCESSING, choices=AttemptStatus.choices, protected=True)
    failure_code = models.CharField(max_length=48, blank=True, default="")
    channel_code = models.CharField(max_length=64, blank=True, default="", help_text="the channel's own code")
    decision = models.CharField(max_length=24, blank=True, default="", help_text="the error map's decision")
    routing = models.JSONField(default=dict, blank=True, help_text="the routing decision and its inputs")
    amount = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    next_query_at = models.DateTimeField(null=True, blank=True, db_index=True)
    query_count = models.PositiveSmallIntegerField(default=0)
    # Past this moment an unresolved attempt goes to manual review (never to failed by itself).
    review_due_at = models.DateTimeField(null=True, blank=True)
    last_query = models.CharField(max_length=64, blank=True, default="", help_text="last status query answer")
    resolved_by = models.CharField(
        max_length=24, blank=True, default="", help_text="submit, query, statement or manual_review"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payout", "number"], name="settlement_attempt_number_unique"),
            models.UniqueConstraint(
                fields=["payout"],
                condition=Q(status__in=["processing", "unknown", "succeeded"]),
                name="settlement_one_live_attempt_per_payout",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "channel"]),
            # Sliding-window success rates and the statement's "attempts of the day".
            models.Index(fields=["resolved_at"], name="settlement_attempt_resolved"),
            models.Index(fields=["channel", "created_at"], name="settlement_attempt_chan_day"),
        ]

    def __str__(self) -> str:
        return self.serial

    @transition(
        field=status, source=[AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN], target=AttemptStatus.SUCCEEDED
    )
    def mark_succeeded(self) -> None:
        pass

    @transition(
        field=status, source=[AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN], target=AttemptStatus.FAILED
    )
    def mark_failed(self) -> None:
        pass

    @transition(field=status, source=AttemptStatus.PROCESSING, target=AttemptStatus.UNKNOWN)
    def mark_unknown(self) -> None:
        pass
