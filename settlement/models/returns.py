"""Returns (退汇): payouts that succeeded and were later sent back by the beneficiary's bank (contract 1.7).

A return is booked once per payout (a unique constraint): by the channel statement import (contract 2.2) or by
staff under four eyes (PayoutReturnRequest: a maker proposes, a different checker approves).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class ReturnSource(models.TextChoices):
    STATEMENT = "statement", "Channel statement"
    STAFF = "staff", "Staff (four eyes)"


class PayoutReturnRequestStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed, awaiting checker"
    APPROVED = "approved", "Approved (return booked)"
    REJECTED = "rejected", "Rejected"


class PayoutReturnRequest(FSMModelMixin, models.Model):
    """A staff member's proposal to book the return of a succeeded payout; a different one decides."""

    payout = models.ForeignKey("funding.Payout", on_delete=models.PROTECT, related_name="return_requests")
    status = FSMField(
        max_length=16,
        choices=PayoutReturnRequestStatus.choices,
        default=PayoutReturnRequestStatus.PROPOSED,
        protected=True,
    )
    reason = models.TextField(help_text="why: the bank's return advice, its reference, ...")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            # The database backs the service's four-eyes rule.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("proposed_by")),
                name="settlement_return_request_four_eyes",
            ),
            models.UniqueConstraint(
                fields=["payout"],
                condition=Q(status="proposed"),
                name="settlement_return_request_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"return of {self.payout_id} ({self.status})"

    @transition(field=status, source=PayoutReturnRequestStatus.PROPOSED, target=PayoutReturnRequestStatus.APPROVED)
    def approve(self) -> None:
        pass

    @transition(field=status, source=PayoutReturnRequestStatus.PROPOSED, target=PayoutReturnRequestStatus.REJECTED)
    def reject(self) -> None:
        pass


class PayoutReturn(models.Model):
    """One booked return: the money back from the channel, how it split, and the journal that moved it."""

    # One return per payout, whoever books it: a second import of the same statement, or a staff proposal for
    # a payout the statement already returned, cannot book it twice.
    payout = models.OneToOneField("funding.Payout", on_delete=models.PROTECT, related_name="bank_return")
    attempt = models.ForeignKey("settlement.PayoutAttempt", on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey("settlement.Channel", on_delete=models.PROTECT, related_name="+")
    business_date = models.DateField(db_index=True)
    source = models.CharField(max_length=16, choices=ReturnSource.choices)
    amount = models.DecimalField(**MONEY)
    own_funds = models.DecimalField(**MONEY, default=0)
    principal_released = models.DecimalField(**MONEY, default=0)
    principal_refunded = models.DecimalField(**MONEY, default=0)
    fee_before = models.DecimalField(**MONEY, default=0)
    fee_after = models.DecimalField(**MONEY, default=0)
    fee_refunded = models.DecimalField(**MONEY, default=0)
    journal = models.OneToOneField("ledger.JournalTransaction", on_delete=models.PROTECT, related_name="+")
    statement = models.ForeignKey(
        "settlement.ChannelStatement", null=True, blank=True, on_delete=models.PROTECT, related_name="returns"
    )
    request = models.OneToOneField(
        PayoutReturnRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="booked_return"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-business_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="settlement_return_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=F("own_funds") + F("principal_released") + F("principal_refunded")),
                name="settlement_return_parts_add_up",
            ),
            models.CheckConstraint(
                condition=Q(fee_after__lte=F("fee_before")) & Q(fee_refunded__lte=F("fee_before") - F("fee_after")),
                name="settlement_return_fee_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"return of {self.payout_id}"

    @property
    def refund(self):
        return self.principal_refunded + self.fee_refunded
