from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models import Payout

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class AttemptStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown"


# At most one attempt per payout may be in one of these states: the database refuses a second.
LIVE_ATTEMPT_STATES = [AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN, AttemptStatus.SUCCEEDED]


class PayoutAttempt(FSMModelMixin, models.Model):
    # Indexes written for every attempt and rewritten by each of its updates: only those a query uses. The
    # payout's and the channel's lookups use the composite indexes they lead (number_unique, chan_day).
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="attempts", db_index=False)
    number = models.PositiveSmallIntegerField()
    serial = models.CharField(max_length=64)
    channel = models.ForeignKey(
        "settlement.Channel", on_delete=models.PROTECT, related_name="attempts", db_index=False
    )
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
    next_query_at = models.DateTimeField(null=True, blank=True)
    query_count = models.PositiveSmallIntegerField(default=0)
    # Past this moment an unresolved attempt goes to manual review (never to failed by itself).
    review_due_at = models.DateTimeField(null=True, blank=True)
    last_query = models.CharField(max_length=64, blank=True, default="", help_text="last status query answer")
    resolved_by = models.CharField(
        max_length=24, blank=True, default="", help_text="submit, query, statement or manual_review"
    )

    class Meta:
        constraints = [
            # A constraint, not unique=True: no varchar_pattern_ops twin that no query uses.
            models.UniqueConstraint(fields=["serial"], name="settlement_attempt_serial_unique"),
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
            # The poller's due queries; a resolved attempt (next_query_at NULL) leaves it.
            models.Index(fields=["next_query_at"], condition=Q(next_query_at__isnull=False),
                         name="settlement_attempt_query_due"),
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
