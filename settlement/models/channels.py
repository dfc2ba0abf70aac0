from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class Channel(models.Model):
    """A payout channel (HVPS, BEPS, IBPS, internal transfer...), configured by staff in the admin."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    # Staff switch a channel off here when the bank reports an outage; routing also skips a channel whose
    # recent success rate fell below settings.DISBURSEMENT_UNHEALTHY_BELOW.
    healthy = models.BooleanField(default=True)
    fee_fixed = models.DecimalField(**MONEY, default=0)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=4, default=0)
    min_amount = models.DecimalField(**MONEY, default="0.01")
    max_amount = models.DecimalField(**MONEY, default="9999999999999.99")
    service_start = models.TimeField(null=True, blank=True, help_text="empty: 7x24")
    service_end = models.TimeField(null=True, blank=True, help_text="also the cut-off for status queries")
    runs_on_non_business_days = models.BooleanField(default=False)
    bank_codes = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="comma-separated beneficiary bank codes this channel can reach; empty: any bank",
    )
    adapter = models.CharField(max_length=200, help_text="dotted path of the adapter class")
    adapter_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__lte=F("max_amount")), name="settlement_channel_amount_range"
            ),
            models.CheckConstraint(
                condition=Q(fee_fixed__gte=0) & Q(fee_bps__gte=0), name="settlement_channel_fee_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class ErrorDecision(models.TextChoices):
    FAILOVER = "failover", "Fail over to another channel"
    RETRY_SAME_CHANNEL = "retry_same_channel", "Retry on the same channel"
    FINAL_FAILURE = "final_failure", "Final failure"
    TREAT_AS_UNKNOWN = "treat_as_unknown", "Treat as unknown"


class ChannelErrorMapping(models.Model):
    """A channel's own failure code -> our unified code and what to do. An unmapped code means unknown."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="error_mappings")
    channel_code = models.CharField(max_length=64)
    unified_code = models.CharField(max_length=48)
    decision = models.CharField(max_length=24, choices=ErrorDecision.choices)
    description = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["channel__code", "channel_code"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "channel_code"], name="settlement_error_map_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.channel_code} -> {self.unified_code} ({self.decision})"


class ChannelChangeKind(models.TextChoices):
    CHANNEL_CREATE = "channel_create", "Add a channel"
    CHANNEL_UPDATE = "channel_update", "Change a channel's configuration"
    MAPPING_CREATE = "mapping_create", "Add an error-map entry"
    MAPPING_UPDATE = "mapping_update", "Change an error-map entry"
    MAPPING_DELETE = "mapping_delete", "Remove an error-map entry"


class ChannelChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ChannelChangeRequest(FSMModelMixin, models.Model):
    """A maker's proposal to change a channel or its error map; a different staff member applies it.

    A wrong failover mapping can pay twice (an outcome read as a failure is sent again elsewhere), and a
    channel's limits and hours decide what is accepted: so no single person changes either.
    `proposed` holds the fields to set, `current` what they were when proposed (shown to the checker).
    """

    kind = models.CharField(max_length=16, choices=ChannelChangeKind.choices)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mapping = models.ForeignKey(ChannelErrorMapping, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    proposed = models.JSONField(default=dict, blank=True)
    current = models.JSONField(default=dict, blank=True)
    status = FSMField(default=ChannelChangeStatus.PENDING, choices=ChannelChangeStatus.choices, protected=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    maker_reason = models.TextField()
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checker_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(checker=F("maker")), name="settlement_channel_checker_is_not_maker"),
        ]

    def __str__(self) -> str:
        return f"channel change #{self.pk} {self.get_kind_display()} ({self.status})"

    @transition(field=status, source=ChannelChangeStatus.PENDING, target=ChannelChangeStatus.APPROVED)
    def mark_approved(self) -> None:
        pass

    @transition(field=status, source=ChannelChangeStatus.PENDING, target=ChannelChangeStatus.REJECTED)
    def mark_rejected(self) -> None:
        pass
