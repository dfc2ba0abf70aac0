from django.conf import settings
from django.db import models
from django.db.models import F, Q

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class Channel(models.Model):
    """A payout channel (HVPS, BEPS, IBPS, internal transfer...), configured by staff in the admin."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    fee_fixed = models.DecimalField(**MONEY, default=0)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=4, default=0)
    min_amount = models.DecimalField(**MONEY, default="0.01")
    max_amount = models.DecimalField(**MONEY, default="9999999999999.99")
    service_start = models.TimeField(null=True, blank=True, help_text="empty: 7x24")
    service_end = models.TimeField(null=True, blank=True)
    runs_on_non_business_days = models.BooleanField(default=False)
    adapter = models.CharField(max_length=200, help_text="dotted path of the adapter class")
    adapter_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(min_amount__lte=F("max_amount")), name="settlement_channel_amount_range"),
            models.CheckConstraint(condition=Q(fee_fixed__gte=0) & Q(fee_bps__gte=0), name="settlement_channel_fee_positive"),
        ]

    def __str__(self) -> str:
        return self.code
