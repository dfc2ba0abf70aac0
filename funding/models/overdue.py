"""What the end of day records about overdue advances: daily penalty accruals and the aging snapshot."""

from django.db import models

from funding.models.advances import Advance
from funding.models.common import ACCRUAL, MONEY, RATE
from funding.models.companies import Company


class PenaltyAccrual(models.Model):
    """Penalty interest of one overdue advance for one closed business date (covering `days` calendar days).

    `amount_exact` keeps the accrual at the higher scale; `posted` is what the ledger got: the quantized
    running total less what was posted before, so rounding never drifts over many days.
    """

    advance = models.ForeignKey(Advance, on_delete=models.PROTECT, related_name="penalty_accruals")
    accrual_date = models.DateField()
    days = models.PositiveSmallIntegerField()
    base = models.DecimalField(**MONEY)
    penalty_rate = models.DecimalField(**RATE)
    amount_exact = models.DecimalField(**ACCRUAL)
    posted = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["advance", "accrual_date"], name="funding_penalty_once_per_day"
            ),
        ]
        indexes = [models.Index(fields=["accrual_date"])]

    def __str__(self) -> str:
        return f"{self.advance_id} {self.accrual_date} {self.amount_exact}"


class AgingBucket(models.TextChoices):
    D1_3 = "1-3", "1-3 days"
    D4_7 = "4-7", "4-7 days"
    D8_30 = "8-30", "8-30 days"
    OVER_30 = ">30", "over 30 days"


class AgingSnapshot(models.Model):
    """Overdue advances per company and aging bucket as of the end of a business date (for reports)."""

    business_date = models.DateField()
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bucket = models.CharField(max_length=8, choices=AgingBucket.choices)
    advances = models.PositiveIntegerField()
    outstanding = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["business_date", "company", "bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["business_date", "company", "bucket"], name="funding_aging_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_date} {self.company_id} {self.bucket}"
