from django.conf import settings
from django.db import models

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class StatementSource(models.TextChoices):
    ADAPTER = "adapter", "Fetched from the channel adapter"
    CSV = "csv", "Uploaded CSV"


class ChannelStatement(models.Model):
    """One channel's statement for one day. Importing it again refreshes its lines (idempotent by serial)."""

    channel = models.ForeignKey("settlement.Channel", on_delete=models.PROTECT, related_name="statements")
    statement_date = models.DateField()
    source = models.CharField(max_length=16, choices=StatementSource.choices)
    imported_at = models.DateTimeField(auto_now=True)
    imported_by = models.CharField(max_length=150, blank=True, default="")
    row_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-statement_date", "channel__code"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "statement_date"], name="settlement_statement_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.statement_date}"


class ReconClass(models.TextChoices):
    MATCHED = "matched", "Matched"
    MISSING_ON_OUR_SIDE = "missing_on_our_side", "Missing on our side"
    MISSING_IN_STATEMENT = "missing_in_statement", "Missing in statement"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    STATUS_MISMATCH = "status_mismatch", "Status mismatch"


class ReconciliationItem(models.Model):
    """One serial compared between a channel statement and our attempts. Not matched: an exception."""

    statement = models.ForeignKey(ChannelStatement, on_delete=models.CASCADE, related_name="items")
    serial = models.CharField(max_length=64)
    attempt = models.ForeignKey(
        "settlement.PayoutAttempt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reconciliation_items",
    )
    statement_amount = models.DecimalField(**MONEY, null=True, blank=True)
    statement_status = models.CharField(max_length=16, blank=True, default="")
    statement_code = models.CharField(max_length=64, blank=True, default="")
    our_amount = models.DecimalField(**MONEY, null=True, blank=True)
    our_status = models.CharField(max_length=16, blank=True, default="")
    classification = models.CharField(max_length=24, choices=ReconClass.choices)
    resolved_attempt = models.BooleanField(default=False, help_text="this line resolved an unknown attempt")
    booked_return = models.BooleanField(default=False, help_text="this line booked the return of its payout")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["statement_id", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "serial"], name="settlement_recon_item_unique"),
        ]
        indexes = [models.Index(fields=["classification"])]

    def __str__(self) -> str:
        return f"{self.serial} {self.classification}"
