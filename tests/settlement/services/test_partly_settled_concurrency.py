"""A late success taken into an advance that is due (finishing step) racing with a repayment pass must not
deadlock (contract 1.7: a partly settled advance is collected while its other payout may still resolve).

The repayment posts to the company's receivables (its journal locks them) and then updates the advances; the
finishing step locks the advance and posts the fee of the new part to the fee receivable. Unless the finishing
step takes the fee receivable before the advance, each waits for the other's row.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from funding.models import Advance, AdvanceStatus, CreditLine
from funding.services.advances import advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import PayoutAttempt, Repayment
from settlement.services.disbursement import advance_try_finish, advances_try_finish, attempt_apply
from settlement.services.nightly import business_day_close, repayments_collect_run
from tests.factories import calendar_and_business_date, company_with_line, payout_inputs
from tests.lock_helpers import queued_behind_a_held_row
from tests.money_helpers import advance_start_disbursing, payout_send, settlement_deposit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal


def test_a_late_success_finishing_while_a_repayment_collects_the_advance_does_not_deadlock():
    calendar_and_business_date()
    company, line = company_with_line()
    advance = advance_request(company=company, external_id="SETTLE-1", amount=D("150000.00"),
                              payouts=payout_inputs("100000.00", "50000.00"), use_own_funds=False)
    advance_start_disbursing(advance=advance)
    a, b = advance.payouts.order_by("sequence")
    wed = advance.business_date
    attempt_a, attempt_b = payout_send(payout=a, business_date=wed), payout_send(payout=b, business_date=wed)
    PayoutAttempt.objects.filter(pk=attempt_b.pk).update(review_due_at=timezone.now() + timedelta(hours=6))
    attempt_apply(attempt_id=attempt_a.pk, status="succeeded", source="submit")
    attempt_apply(attempt_id=attempt_b.pk, status="unknown", source="submit")
    advance_try_finish(advance_id=advance.pk)
    business_day_close()  # Wednesday; Thursday the advance is due
    # B succeeds (its payout's transaction commits); the step that takes it into the advance runs below.
    attempt_apply(attempt_id=attempt_b.pk, status="succeeded", source="query")
    settlement_deposit(company=company, amount="150045.00", business_date=advance.due_date)
    fee_receivable = Account.objects.get(kind=AccountKind.FEE_RECEIVABLE, owner=company.code)

    # The worst way: the repayment queues first for the fee receivable (its journal), then the finishing step
    # comes; when the row is let go the repayment gets it and goes on to update the advance. The row is held
    # by a third connection, as a slow posting would.
    errors = queued_behind_a_held_row(Account.objects.filter(pk=fee_receivable.pk), repayments_collect_run,
                                      lambda: advance_try_finish(advance_id=advance.pk))
    assert errors == []
    advance = Advance.objects.get(pk=advance.pk)
    assert (advance.advanced_disbursed, advance.fee) == (D("150000.00"), D("45.00"))
    repaid = advance.principal_repaid + advance.fee_repaid
    # The collector queued on the advance first: it took A's part (100,000.00 + 30.00); B's part, counted in
    # after it, waits for the next collection.
    assert Repayment.objects.get().amount == D("100030.00")
    assert (advance.status, repaid) == (AdvanceStatus.DISBURSED, D("100030.00"))
    line = CreditLine.objects.get(pk=line.pk)
    assert (line.reserved, line.outstanding) == (D("0.00"), D("50000.00"))
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def test_late_successes_of_several_advances_finishing_set_based_while_a_repayment_collects_do_not_deadlock():
    """The same race with the set-based finish taking in two advances of the company at once: it takes the
    fee receivable before the advances (in id order), as the repayment does."""
    calendar_and_business_date()
    company, line = company_with_line()
    sizes = {"A": ("100000.00", "50000.00"), "B": ("20000.00", "10000.00")}
    advances, late = {}, []
    for name, amounts in sizes.items():
        advance = advance_request(company=company, external_id=f"SETTLE-{name}",
                                  amount=sum((D(a) for a in amounts), D("0")), payouts=payout_inputs(*amounts),
                                  use_own_funds=False)
        advance_start_disbursing(advance=advance)
        first, second = advance.payouts.order_by("sequence")
        wed = advance.business_date
        attempt_first, attempt_second = (payout_send(payout=first, business_date=wed),
                                         payout_send(payout=second, business_date=wed))
        PayoutAttempt.objects.filter(pk=attempt_second.pk).update(review_due_at=timezone.now() + timedelta(hours=6))
        attempt_apply(attempt_id=attempt_first.pk, status="succeeded", source="submit")
        attempt_apply(attempt_id=attempt_second.pk, status="unknown", source="submit")
        advances[name] = advance
        late.append(attempt_second)
    advances_try_finish(advance_ids=[a.pk for a in advances.values()])
    business_day_close()  # Wednesday; Thursday both are due
    for attempt in late:  # the second payouts succeed; the step that takes them in runs below
        attempt_apply(attempt_id=attempt.pk, status="succeeded", source="query")
    settlement_deposit(company=company, amount="180054.00", business_date=advances["A"].due_date)
    fee_receivable = Account.objects.get(kind=AccountKind.FEE_RECEIVABLE, owner=company.code)

    errors = queued_behind_a_held_row(Account.objects.filter(pk=fee_receivable.pk), repayments_collect_run,
                                      lambda: advances_try_finish(advance_ids=[a.pk for a in advances.values()]))
    assert errors == []
    got = {name: Advance.objects.get(pk=a.pk) for name, a in advances.items()}
    assert {name: (a.status, a.advanced_disbursed, a.fee, a.principal_repaid + a.fee_repaid)
            for name, a in got.items()} == {
        # The collector took what was known first (the first payouts' parts and their fees); the late parts,
        # counted in after it, wait for the next collection.
        "A": (AdvanceStatus.DISBURSED, D("150000.00"), D("45.00"), D("100030.00")),
        "B": (AdvanceStatus.DISBURSED, D("30000.00"), D("9.00"), D("20006.00")),
    }
    assert Repayment.objects.get().amount == D("120036.00")
    line = CreditLine.objects.get(pk=line.pk)
    assert (line.reserved, line.outstanding) == (D("0.00"), D("60000.00"))
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []
