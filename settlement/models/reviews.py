from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition


class ManualReviewStatus(models.TextChoices):
    OPEN = "open", "Open (alert)"
    PROPOSED = "proposed", "Outcome proposed, awaiting checker"
    RESOLVED = "resolved", "Resolved"


class ManualReviewOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "The channel paid"
    FAILED = "failed", "The channel did not pay"


class ManualReview(FSMModelMixin, models.Model):
    """An attempt whose outcome stayed unknown past its deadline: an alert until staff resolve it.

    Four eyes: a maker proposes the outcome with a reason, a different staff member approves it.
    """

    attempt = models.OneToOneField(
        "settlement.PayoutAttempt", on_delete=models.PROTECT, related_name="review"
    )
    payout = models.ForeignKey("funding.Payout", on_delete=models.PROTECT, related_name="reviews")
    status = FSMField(
        max_length=16, choices=ManualReviewStatus.choices, default=ManualReviewStatus.OPEN, protected=True
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    opened_reason = models.CharField(max_length=200, blank=True, default="")
    proposed_outcome = models.CharField(
        max_length=16, choices=ManualReviewOutcome.choices, blank=True, default=""
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    proposal_reason = models.TextField(blank=True, default="")
    proposed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=16, blank=True, default="")
    resolved_by_label = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["status", "opened_at"]
        constraints = [
            # The database backs the service's four-eyes rule.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("proposed_by")),
                name="settlement_review_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.attempt_id} ({self.status})"

    @transition(field=status, source=ManualReviewStatus.OPEN, target=ManualReviewStatus.PROPOSED)
    def propose(self) -> None:
        pass

    @transition(field=status, source=ManualReviewStatus.PROPOSED, target=ManualReviewStatus.OPEN)
    def reopen(self) -> None:
        """The checker disagreed with the proposal."""

    @transition(
        field=status, source=[ManualReviewStatus.OPEN, ManualReviewStatus.PROPOSED], target=ManualReviewStatus.RESOLVED
    )
    def resolve(self) -> None:
        pass
