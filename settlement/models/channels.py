from django.conf import settings
from django.db import models
from django.db.models import F, Q

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
