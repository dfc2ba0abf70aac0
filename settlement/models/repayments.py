"""Repayments taken from settlement accounts and their allocation per advance."""

from django.conf import settings
from django.db import models
from django.db.models import Q

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class RepaymentSource(models.TextChoices):
    SETTLEMENT_DEBIT = "settlement_debit", "Settlement-account debit"
    # Principal (and fee) repaid for a payout that was later returned (退汇): credited back (contract 1.7).
    REFUND = "refund", "Refund to the settlement account"
    # Staff applied the company's margin deposit to its overdue debt (four eyes; settlement.MarginSetOff).
    MARGIN_SETOFF = "margin_setoff", "Margin set-off"


class Repayment(models.Model):
    """One debit of a company's settlement account by one collection pass, or of its margin account by one
    approved margin set-off; one journal transaction."""

    # Idempotency key: repay:<business date>:<pass>:<company code>. A pass never takes twice from a company.
    # A refund: refund:<payout id> (one return per payout).
    # A margin set-off: margin_setoff:<set-off id>.
    reference = models.CharField(max_length=120, unique=True)
    company = models.ForeignKey("funding.Company", on_delete=models.PROTECT, related_name="repayments")
    business_date = models.DateField(db_index=True)
    source = models.CharField(
        max_length=24, choices=RepaymentSource.choices, default=RepaymentSource.SETTLEMENT_DEBIT
    )
    currency = models.CharField(max_length=3, default=settings.ENGINE_CURRENCY)
    amount = models.DecimalField(**MONEY)
    penalty = models.DecimalField(**MONEY, default=0)
    fee = models.DecimalField(**MONEY, default=0)
    principal = models.DecimalField(**MONEY, default=0)
    journal = models.OneToOneField("ledger.JournalTransaction", on_delete=models.PROTECT, related_name="+")
    job_run = models.ForeignKey(
        "settlement.JobRun", null=True, blank=True, on_delete=models.PROTECT, related_name="repayments"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-business_date", "-id"]
        indexes = [models.Index(fields=["company", "business_date"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="settlement_repayment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=models.F("penalty") + models.F("fee") + models.F("principal")),
                name="settlement_repayment_parts_add_up",
            ),
        ]

    def __str__(self) -> str:
        return self.reference


class RepaymentAllocation(models.Model):
    repayment = models.ForeignKey(Repayment, on_delete=models.PROTECT, related_name="allocations")
    advance = models.ForeignKey(
        "funding.Advance", on_delete=models.PROTECT, related_name="repayment_allocations"
    )
    penalty = models.DecimalField(**MONEY, default=0)
    fee = models.DecimalField(**MONEY, default=0)
    principal = models.DecimalField(**MONEY, default=0)
    # The advance was repaid in full by this allocation.
    settles_advance = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repayment", "advance"], name="settlement_allocation_once_per_advance"
            ),
            models.CheckConstraint(
                condition=Q(penalty__gte=0) & Q(fee__gte=0) & Q(principal__gte=0),
                name="settlement_allocation_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.repayment_id} -> {self.advance_id}"
