"""Manual review: four eyes (maker proposes, a different checker approves), audited, with postings."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from funding.errors import FourEyesViolation, InvalidState, ValidationFailed
from funding.models import AuditEvent, CreditLine, WebhookEvent
from ledger.models import AccountKind
from ledger.selectors import account_balance, trial_balance
from settlement.models import ManualReview, PayoutAttempt
from settlement.services.disbursement import advance_dispatch, attempts_poll_due
from settlement.services.reviews import manual_review_approve, manual_review_propose, manual_review_reject
from tests.factories import staff_user
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def review(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    attempts_poll_due(now=attempt.review_due_at + timedelta(seconds=1))
    return ManualReview.objects.get()


def test_maker_cannot_approve_own_proposal(review):
    maker = staff_user()
    manual_review_propose(
        review_id=review.pk, outcome="succeeded", reason="bank confirmed by phone", maker=maker
    )
    with pytest.raises(FourEyesViolation):
        manual_review_approve(review_id=review.pk, checker=maker)
    with pytest.raises(FourEyesViolation):
        manual_review_reject(review_id=review.pk, checker=maker, reason="no")
    review.refresh_from_db()
    assert review.status == "proposed" and review.approved_by is None
    assert review.payout.status == "manual_review"
    # The database backs the rule too.
    with pytest.raises(IntegrityError), transaction.atomic():
        ManualReview.objects.filter(pk=review.pk).update(approved_by=maker)


def test_checker_approves_success_and_the_advance_finishes(review):
    maker, checker = staff_user(), staff_user()
    manual_review_propose(review_id=review.pk, outcome="succeeded", reason="statement line 17", maker=maker)
    manual_review_approve(review_id=review.pk, checker=checker, reason="seen the statement")
    review.refresh_from_db()
    assert (review.status, review.resolution, review.approved_by_id) == ("resolved", "succeeded", checker.pk)
    attempt = review.attempt
    attempt.refresh_from_db()
    assert (attempt.status, attempt.resolved_by) == ("succeeded", "manual_review")
    payout = review.payout
    payout.refresh_from_db()
    assert payout.status == "succeeded" and payout.advance.status == "disbursed"
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    actions = list(
        AuditEvent.objects.filter(action__startswith="payout.manual_review.")
        .order_by("id")
        .values_list("action", "actor_id")
    )
    assert actions == [
        ("payout.manual_review.proposed", maker.pk),
        ("payout.manual_review.approved", checker.pk),
    ]
    assert WebhookEvent.objects.filter(type="payout.succeeded").count() == 1
    with pytest.raises(InvalidState):
        manual_review_approve(review_id=review.pk, checker=staff_user())


def test_checker_approves_failure_funds_come_back(review):
    maker, checker = staff_user(), staff_user()
    manual_review_propose(
        review_id=review.pk, outcome="failed", reason="channel says never received", maker=maker
    )
    manual_review_approve(review_id=review.pk, checker=checker)
    payout = review.payout
    payout.refresh_from_db()
    assert (payout.status, payout.failure_code) == ("failed", "failed_confirmed_by_staff")
    assert payout.advance.status == "failed"
    assert PayoutAttempt.objects.count() == 1  # never re-sent after a human decision
    line = CreditLine.objects.get(pk=payout.advance.credit_line_id)
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), Decimal("0.00"))
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_reject_reopens_and_bad_input_changes_nothing(review):
    maker, checker = staff_user(), staff_user()
    with pytest.raises(ValidationFailed):
        manual_review_propose(review_id=review.pk, outcome="succeeded", reason="  ", maker=maker)
    with pytest.raises(ValidationFailed):
        manual_review_propose(review_id=review.pk, outcome="maybe", reason="x", maker=maker)
    review.refresh_from_db()
    assert review.status == "open" and review.proposed_by is None
    manual_review_propose(review_id=review.pk, outcome="failed", reason="guess", maker=maker)
    manual_review_reject(review_id=review.pk, checker=checker, reason="no evidence")
    review.refresh_from_db()
    assert (review.status, review.proposed_outcome, review.proposed_by) == ("open", "", None)
    assert review.payout.status == "manual_review"
