"""Contract 1.7, "an advance is due for what actually left the bank": an advance whose payout B is in manual review
while payout A succeeded owes A's principal and fee on its due date; it is collected, made overdue and charged
penalty for that part only; B stays `reserved` on the line until its outcome is known; a later success of B is due
at the next collection with no penalty for the days before; a later failure of B is released.

One advance throughout: 150,000.00 = A 100,000.00 + B 50,000.00, all from the line (fee rate 0.0003 a day,
penalty rate 0.0005 a day), requested on Wednesday 2026-11-25 and due Thursday 2026-11-26.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from funding.models import (
    Advance,
    AdvanceStatus,
    CreditLine,
    CreditLineStatus,
    PenaltyAccrual,
    WebhookEvent,
)
from funding.representations import advance_representation
from funding.selectors import credit_line_view, credit_lines_unknown_out
from funding.services.advances import advance_request
from ledger.models import AccountKind, JournalTransaction
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from settlement.models import ManualReview, PayoutAttempt, Repayment
from settlement.services.disbursement import advance_try_finish, advances_finish_sweep, attempt_apply
from settlement.services.disbursement.claim import payout_claim_next
from settlement.services.nightly import business_day_close, repayments_collect_run
from settlement.services.reviews import manual_review_approve, manual_review_propose
from tests.factories import company_with_line, payout_inputs, staff_user
from tests.funding.api.conftest import signed_client_for
from tests.money_helpers import advance_start_disbursing, payout_resolve, payout_send
from tests.settlement.nightly_helpers import balance, credit_settlement

pytestmark = pytest.mark.django_db

D = Decimal
WED, THU, FRI, MON = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30)


def _books_balanced() -> None:
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def _line(line: CreditLine) -> tuple:
    line.refresh_from_db()
    return line.status, line.reserved, line.outstanding


def _partly_settled(company, *, review: bool = True) -> tuple[Advance, PayoutAttempt]:
    """A succeeded at once; B's channel gave no answer: B is `unknown`, and past the review deadline (`review`)
    in manual review."""
    advance = advance_request(company=company, external_id="SETTLE-1", amount=D("150000.00"),
                              payouts=payout_inputs("100000.00", "50000.00"), use_own_funds=False)
    advance_start_disbursing(advance=advance)
    a, b = advance.payouts.order_by("sequence")
    attempt_a, attempt_b = payout_send(payout=a, business_date=WED), payout_send(payout=b, business_date=WED)
    deadline = timezone.now() + timedelta(minutes=-1 if review else 60)
    PayoutAttempt.objects.filter(pk=attempt_b.pk).update(review_due_at=deadline)
    attempt_apply(attempt_id=attempt_a.pk, status="succeeded", source="submit")
    attempt_apply(attempt_id=attempt_b.pk, status="unknown", source="submit")
    advance_try_finish(advance_id=advance.pk)
    advance.refresh_from_db()
    return advance, attempt_b


def _review(outcome: str) -> None:
    review = ManualReview.objects.get()
    manual_review_propose(review_id=review.pk, outcome=outcome, reason="channel statement", maker=staff_user())
    manual_review_approve(review_id=review.pk, checker=staff_user())


def test_the_paid_part_is_owed_at_once_and_the_unknown_part_stays_reserved(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)

    assert advance.status == AdvanceStatus.DISBURSING
    assert advance.payouts.get(sequence=2).status == "manual_review"
    assert (advance.disbursed_amount, advance.advanced_disbursed, advance.fee) == (
        D("100000.00"), D("100000.00"), D("30.00"))  # 100,000.00 x 0.0003 x 1 day
    assert _line(line) == (CreditLineStatus.ACTIVE, D("50000.00"), D("100000.00"))
    body = advance_representation(advance)
    assert (body["status"], body["disbursed_amount"], body["fee"], body["outstanding_amount"]) == (
        "disbursing", "100000.00", "30.00", "100030.00")
    view = credit_line_view(company=company)
    assert (view["reserved"], view["outstanding"], view["available"]) == ("50000.00", "100000.00", "850000.00")
    # The same through the API, black-box.
    api = signed_client_for(company)
    got = api.get(f"/api/v1/advances/{advance.public_id}").json()
    assert (got["status"], got["disbursed_amount"], got["fee"], got["outstanding_amount"]) == (
        "disbursing", "100000.00", "30.00", "100030.00")
    assert [p["status"] for p in got["payouts"]] == ["succeeded", "manual_review"]
    got = api.get("/api/v1/credit-line").json()
    assert (got["reserved"], got["outstanding"], got["overdue"], got["available"]) == (
        "50000.00", "100000.00", "0.00", "850000.00")
    # The ledger: both parts left (the receivable is exposure from hand-off), A's fee is charged; the line's
    # outstanding is the receivable less B's part, out with its outcome unknown.
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == D("150000.00")
    assert credit_lines_unknown_out() == {line.pk: D("50000.00")}
    assert balance(company, AccountKind.FEE_RECEIVABLE) == D("30.00")
    _books_balanced()
    # Nothing new is known: taking the outcomes in again changes nothing.
    version = advance.version
    advance_try_finish(advance_id=advance.pk)
    advance.refresh_from_db()
    assert advance.version == version
    assert JournalTransaction.objects.filter(kind="advance.fee").count() == 1


def test_the_paid_part_is_collected_on_the_due_date(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)
    business_day_close()  # Wednesday: nothing due yet
    credit_settlement(company, "100030.00")

    outcome = repayments_collect_run()

    assert outcome.run.amounts["repaid"] == "100030.00"
    repayment = Repayment.objects.get()
    assert (repayment.principal, repayment.fee, repayment.penalty) == (D("100000.00"), D("30.00"), D("0.00"))
    advance.refresh_from_db()
    # Not repaid: B may still add to what is owed.
    assert (advance.status, advance.outstanding_amount) == (AdvanceStatus.DISBURSING, D("0.00"))
    assert not WebhookEvent.objects.filter(type="advance.repaid").exists()
    assert _line(line) == (CreditLineStatus.ACTIVE, D("50000.00"), D("0.00"))
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == D("50000.00")  # B's part, out, outcome unknown
    assert balance(company, AccountKind.SETTLEMENT) == D("0.00")
    _books_balanced()

    business_day_close()  # Thursday: nothing left overdue
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSING
    assert _line(line) == (CreditLineStatus.ACTIVE, D("50000.00"), D("0.00"))
    assert not PenaltyAccrual.objects.exists()
    _books_balanced()


def test_the_paid_part_goes_overdue_with_penalty_on_it_alone_then_a_late_success_adds_no_back_dated_penalty(
    business_day,
):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)
    business_day_close()  # Wednesday
    outcome = business_day_close()  # Thursday: the due date, nothing arrived

    assert outcome.run.counts["advances_overdue"] == 1
    advance.refresh_from_db()
    assert (advance.status, advance.overdue_since) == (AdvanceStatus.OVERDUE, THU)
    assert WebhookEvent.objects.filter(type="advance.overdue", resource_id=advance.public_id).count() == 1
    accrual = PenaltyAccrual.objects.get()
    # On A's principal + fee only (B's 50,000.00 is still unknown): 100,030.00 x 0.0005 x 1 day = 50.015.
    assert (accrual.accrual_date, accrual.days, accrual.base, accrual.posted) == (
        THU, 1, D("100030.00"), D("50.02"))
    assert advance.penalty_accrued == D("50.02")
    assert _line(line) == (CreditLineStatus.FROZEN, D("50000.00"), D("100000.00"))
    assert credit_line_view(company=company)["overdue"] == "100000.00"
    _books_balanced()

    # Friday: the checker confirms B paid. Its 50,000.00 and its fee (15.00, from Wednesday) are owed now.
    _review("succeeded")
    advance.refresh_from_db()
    assert (advance.status, advance.advanced_disbursed, advance.fee) == (
        AdvanceStatus.OVERDUE, D("150000.00"), D("45.00"))
    assert advance.outstanding_amount == D("150095.02")  # 150,000.00 + 45.00 + 50.02
    assert JournalTransaction.objects.get(reference=f"{advance.public_id}:fee:v{advance.version}").kind == (
        "advance.fee")
    assert balance(company, AccountKind.FEE_RECEIVABLE) == D("45.00")
    assert _line(line) == (CreditLineStatus.FROZEN, D("0.00"), D("150000.00"))
    _books_balanced()

    # The next collection takes all of it: the penalty is A's Thursday only, nothing back-dated for B.
    credit_settlement(company, "150095.02")
    repayments_collect_run()
    repayment = Repayment.objects.get()
    assert (repayment.penalty, repayment.fee, repayment.principal) == (D("50.02"), D("45.00"), D("150000.00"))
    advance.refresh_from_db()
    assert (advance.status, advance.outstanding_amount) == (AdvanceStatus.REPAID, D("0.00"))
    assert WebhookEvent.objects.filter(type="advance.repaid", resource_id=advance.public_id).count() == 1
    assert PenaltyAccrual.objects.count() == 1
    assert _line(line)[1:] == (D("0.00"), D("0.00"))
    for kind in (AccountKind.ADVANCE_RECEIVABLE, AccountKind.FEE_RECEIVABLE, AccountKind.PENALTY_RECEIVABLE,
                 AccountKind.SETTLEMENT):
        assert balance(company, kind) == D("0.00")
    _books_balanced()


def test_an_overdue_part_repaid_while_a_payout_is_unknown_clears_the_advance_back_to_disbursing(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)
    business_day_close()
    business_day_close()  # Thursday: overdue, penalty 50.02
    credit_settlement(company, "100080.02")

    repayments_collect_run()  # Friday

    advance.refresh_from_db()
    assert (advance.status, advance.outstanding_amount) == (AdvanceStatus.DISBURSING, D("0.00"))
    assert (advance.penalty_repaid, advance.fee_repaid, advance.principal_repaid) == (
        D("50.02"), D("30.00"), D("100000.00"))
    assert advance.aging_bucket == ""
    assert _line(line)[1:] == (D("50000.00"), D("0.00"))
    business_day_close()  # Friday: nothing overdue, no penalty for B's unknown part
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSING
    assert PenaltyAccrual.objects.count() == 1
    _books_balanced()


def test_a_late_success_is_due_at_the_next_collection_and_charged_only_from_then(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)
    business_day_close()  # Wednesday
    credit_settlement(company, "100030.00")
    business_day_close()  # Thursday: the close's repayment pass takes A's part; nothing overdue
    advance.refresh_from_db()
    assert (advance.status, advance.outstanding_amount) == (AdvanceStatus.DISBURSING, D("0.00"))

    _review("succeeded")  # Friday
    advance.refresh_from_db()
    assert (advance.status, advance.fee, advance.outstanding_amount) == (
        AdvanceStatus.DISBURSED, D("45.00"), D("50015.00"))
    event = WebhookEvent.objects.get(type="advance.disbursed", resource_id=advance.public_id)
    assert (event.resource_version, event.payload["data"]["outstanding_amount"]) == (advance.version, "50015.00")
    assert _line(line) == (CreditLineStatus.ACTIVE, D("0.00"), D("50000.00"))
    got = signed_client_for(company).get(f"/api/v1/advances/{advance.public_id}").json()
    assert (got["status"], got["disbursed_amount"], got["repaid_amount"], got["outstanding_amount"]) == (
        "disbursed", "150000.00", "100030.00", "50015.00")

    business_day_close()  # Friday: B's part was due at this collection and did not arrive
    advance.refresh_from_db()
    assert (advance.status, advance.overdue_since) == (AdvanceStatus.OVERDUE, FRI)
    accrual = PenaltyAccrual.objects.get()  # none for Wednesday or Thursday
    # 50,015.00 x 0.0005 x 3 days (Friday to Monday) = 75.0225
    assert (accrual.accrual_date, accrual.days, accrual.base, accrual.posted) == (FRI, 3, D("50015.00"),
                                                                                D("75.02"))
    credit_settlement(company, "50090.02")
    repayments_collect_run()  # Monday
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert Repayment.objects.order_by("-id").values_list("penalty", "fee", "principal")[0] == (
        D("75.02"), D("15.00"), D("50000.00"))
    _books_balanced()


def test_a_late_failure_is_released(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)
    business_day_close()
    credit_settlement(company, "100030.00")
    repayments_collect_run()  # Thursday: A collected
    assert _line(line) == (CreditLineStatus.ACTIVE, D("50000.00"), D("0.00"))

    _review("failed")

    advance.refresh_from_db()
    assert (advance.status, advance.disbursed_amount, advance.fee) == (
        AdvanceStatus.PARTIALLY_DISBURSED, D("100000.00"), D("30.00"))
    assert _line(line) == (CreditLineStatus.ACTIVE, D("0.00"), D("0.00"))
    assert credit_line_view(company=company)["available"] == "1000000.00"
    assert credit_lines_unknown_out() == {}
    # Balanced postings: B's 50,000.00 came back from the channel to the receivable.
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == D("0.00")
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="IBPS") == D("0.00")
    assert JournalTransaction.objects.filter(kind="advance.fee").count() == 1
    _books_balanced()

    repayments_collect_run()  # a second pass the same day: the advance owes nothing and all is final
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert Repayment.objects.count() == 1
    _books_balanced()


def test_a_late_failure_before_the_due_date_leaves_the_paid_part_due(business_day):
    company, line = company_with_line()
    advance, _ = _partly_settled(company)

    _review("failed")  # Wednesday

    advance.refresh_from_db()
    assert (advance.status, advance.outstanding_amount) == (AdvanceStatus.PARTIALLY_DISBURSED, D("100030.00"))
    assert _line(line) == (CreditLineStatus.ACTIVE, D("0.00"), D("100000.00"))
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == D("100000.00")
    _books_balanced()


def test_a_lost_finishing_step_is_found_by_the_sweep(business_day):
    """B's success committed but the step that takes it into the advance was lost: the sweep finds it, and a
    collection in between does not mark the advance repaid."""
    company, line = company_with_line()
    advance, attempt_b = _partly_settled(company)
    business_day_close()
    credit_settlement(company, "100030.00")
    repayments_collect_run()  # A collected
    attempt_apply(attempt_id=attempt_b.pk, status="succeeded", source="statement")  # no advance_try_finish
    repayments_collect_run()
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.DISBURSING

    assert advances_finish_sweep() == 1
    advance.refresh_from_db()
    assert (advance.status, advance.fee, advance.outstanding_amount) == (
        AdvanceStatus.DISBURSED, D("45.00"), D("50015.00"))
    assert advances_finish_sweep() == 0
    _books_balanced()


def test_an_overdue_advance_still_sends_a_payout_waiting_for_a_retry(business_day, channels):
    """B's channel rejects it explicitly after A's part went overdue: B goes back to pending and is sent again
    (claims accept an overdue advance); its part stays reserved throughout."""
    company, line = company_with_line()
    advance, _ = _partly_settled(company, review=False)
    business_day_close()
    business_day_close()  # Thursday: A's part overdue
    b = advance.payouts.get(sequence=2)
    assert b.status == "unknown"
    payout_resolve(payout=b, outcome="retry", business_date=FRI)
    assert _line(line) == (CreditLineStatus.FROZEN, D("50000.00"), D("100000.00"))

    claim = payout_claim_next(advance_id=advance.pk)

    assert claim is not None and claim.attempt_id is not None
    b.refresh_from_db()
    assert (b.status, b.attempt_count, b.funds_out, b.value_date) == ("processing", 2, True, FRI)
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.OVERDUE
    assert _line(line) == (CreditLineStatus.FROZEN, D("50000.00"), D("100000.00"))
    _books_balanced()
