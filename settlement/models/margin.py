"""Margin (保证金) set-off under four eyes: a maker proposes applying part of a company's margin deposit to its
overdue debt, a different staff member approves it. On approval the amount is collected from the margin
account exactly like a repayment (settlement.services.repayments: one allocation, penalty -> fee -> principal,
oldest overdue first) and the request points at the Repayment it booked."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class MarginSetOffStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class MarginSetOff(FSMModelMixin, models.Model):
    company = models.ForeignKey("funding.Company", on_delete=models.PROTECT, related_name="margin_setoffs")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default=settings.ENGINE_CURRENCY)
    status = FSMField(default=MarginSetOffStatus.PENDING, choices=MarginSetOffStatus.choices, protected=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    maker_reason = models.TextField()
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checker_reason = models.TextField(blank=True, default="")
    # What the maker saw when proposing (shown to the checker): margin balance and overdue total.
    margin_balance_at_proposal = models.DecimalField(**MONEY)
    overdue_at_proposal = models.DecimalField(**MONEY)
    repayment = models.OneToOneField(
        "settlement.Repayment", null=True, blank=True, on_delete=models.PROTECT, related_name="margin_setoff"
    )
    business_date = models.DateField(null=True, blank=True, help_text="the business date it was applied on")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "margin set-off"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="settlement_margin_setoff_amount_positive"),
            models.CheckConstraint(
                condition=~Q(checker=F("maker")), name="settlement_margin_setoff_checker_is_not_maker"
            ),
            models.CheckConstraint(
                condition=Q(status=MarginSetOffStatus.APPROVED, repayment__isnull=False)
                | (~Q(status=MarginSetOffStatus.APPROVED) & Q(repayment__isnull=True)),
                name="settlement_margin_setoff_applied_has_repayment",
            ),
        ]

    def __str__(self) -> str:
        return f"margin set-off #{self.pk} {self.amount} ({self.status})"

    @transition(field=status, source=MarginSetOffStatus.PENDING, target=MarginSetOffStatus.APPROVED)
    def mark_approved(self) -> None:
        pass

    @transition(field=status, source=MarginSetOffStatus.PENDING, target=MarginSetOffStatus.REJECTED)
    def mark_rejected(self) -> None:
        pass
