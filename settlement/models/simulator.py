from django.conf import settings
from django.db import models

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class SimulatedTransferStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SimulatedChannelTransfer(models.Model):
    """The "bank side" of a simulated channel: what the channel received, shared by every worker process.

    Not part of the engine's books: only the simulated adapters read and write it.
    """

    channel_code = models.CharField(max_length=32)
    serial = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(**MONEY)
    account_no = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=16, choices=SimulatedTransferStatus.choices)
    # For a late success: the outcome the channel reports once completes_at has passed.
    final_status = models.CharField(max_length=16, choices=SimulatedTransferStatus.choices)
    channel_code_result = models.CharField(max_length=64, blank=True, default="")
    value_date = models.DateField()
    received_at = models.DateTimeField(auto_now_add=True)
    completes_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["channel_code", "value_date"])]

    def __str__(self) -> str:
        return f"{self.channel_code} {self.serial} {self.status}"
