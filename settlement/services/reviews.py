"""Manual review of payouts whose outcome stayed unknown: maker proposes, a different checker approves."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from funding.errors import FourEyesViolation, InvalidState, NotFound, ValidationFailed
from funding.models import Payout, PayoutStatus
from funding.services.audit import audit_record
from settlement.models import ManualReview, ManualReviewOutcome, ManualReviewStatus


def _locked_review(review_id: int) -> ManualReview:
    """Lock the payout first, then the review: the same order as the resolution paths (payout, attempt,
    review), so a staff decision and a concurrent statement line cannot deadlock."""
    payout_id = ManualReview.objects.filter(pk=review_id).values_list("payout_id", flat=True).first()
    if payout_id is None:
        raise NotFound()
    list(Payout.objects.select_for_update().filter(pk=payout_id).values_list("pk"))
    review = (
        ManualReview.objects.select_for_update(of=("self",))
        .select_related("payout__advance__company")
        .get(pk=review_id)
    )
    return review


def manual_review_propose(
    *, review_id: int, outcome: str, reason: str, maker: AbstractBaseUser
) -> ManualReview:
    """The maker states what the channel did (after calling the bank, reading a statement...) and why."""
    if outcome not in ManualReviewOutcome.values:
        raise ValidationFailed(details={"outcome": ["Must be succeeded or failed."]})
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        review = _locked_review(review_id)
        if review.status != ManualReviewStatus.OPEN:
            raise InvalidState(f"The review is {review.status}; only an open review takes a proposal.")
        review.propose()
        review.proposed_outcome = outcome
        review.proposed_by = maker
        review.proposal_reason = reason.strip()
        review.proposed_at = timezone.now()
        review.save(
            update_fields=["status", "proposed_outcome", "proposed_by", "proposal_reason", "proposed_at"]
        )
        audit_record(
            action="payout.manual_review.proposed",
            obj=review.payout,
            actor=maker,
            company=review.payout.advance.company,
            after={"outcome": outcome},
            reason=reason,
        )
    return review


def manual_review_reject(*, review_id: int, checker: AbstractBaseUser, reason: str) -> ManualReview:
    """The checker disagrees: the review is open again for a new proposal."""
    with transaction.atomic():
        review = _locked_review(review_id)
        if review.status != ManualReviewStatus.PROPOSED:
            raise InvalidState("Only a proposed outcome can be rejected.")
        if review.proposed_by_id == checker.pk:
            raise FourEyesViolation()
        before = {"outcome": review.proposed_outcome, "maker": review.proposed_by_id}
        review.reopen()
        review.proposed_outcome = ""
        review.proposed_by = None
        review.proposal_reason = ""
        review.proposed_at = None
        review.save(
            update_fields=["status", "proposed_outcome", "proposed_by", "proposal_reason", "proposed_at"]
        )
        audit_record(
            action="payout.manual_review.rejected",
            obj=review.payout,
            actor=checker,
            company=review.payout.advance.company,
            before=before,
            reason=reason,
        )
    return review


def manual_review_approve(*, review_id: int, checker: AbstractBaseUser, reason: str = "") -> ManualReview:
    """A second person confirms the proposal: the attempt and payout are resolved with their postings."""
    from settlement.services.disbursement import advance_try_finish, attempt_apply

    with transaction.atomic():
        review = _locked_review(review_id)
        if review.status != ManualReviewStatus.PROPOSED:
            raise InvalidState("Only a proposed outcome can be approved.")
        if review.proposed_by_id == checker.pk:
            raise FourEyesViolation()
        if review.payout.status != PayoutStatus.MANUAL_REVIEW:
            raise InvalidState(f"The payout is already {review.payout.status}.")
        outcome = review.proposed_outcome
        review.approved_by = checker
        review.save(update_fields=["approved_by"])
        # A staff-confirmed failure is final: no automatic re-send after a human decision.
        applied = _apply_staff_outcome(review, outcome, attempt_apply)
        review.refresh_from_db()
        if review.status != ManualReviewStatus.RESOLVED:  # applying the outcome may already have closed it
            review.resolve()
        review.resolution = outcome
        review.resolved_by_label = checker.get_username()
        review.resolved_at = timezone.now()
        review.save(update_fields=["status", "resolution", "resolved_by_label", "resolved_at"])
        audit_record(
            action="payout.manual_review.approved",
            obj=review.payout,
            actor=checker,
            company=review.payout.advance.company,
            before={"status": "manual_review"},
            after={"status": outcome, "maker": review.proposed_by.get_username()},
            reason=reason or review.proposal_reason,
        )
    if applied.final:
        advance_try_finish(advance_id=applied.advance_id)
    return review


def _apply_staff_outcome(review: ManualReview, outcome: str, attempt_apply):
    if outcome == ManualReviewOutcome.SUCCEEDED:
        return attempt_apply(attempt_id=review.attempt_id, status="succeeded", source="manual_review")
    from settlement.services.disbursement import staff_failure_apply

    return staff_failure_apply(attempt_id=review.attempt_id)
