"""Funds-out postings racing with repayments of the same company must not deadlock.

A funds-out releases the own-funds hold on the settlement account first, then posts to the receivable; a
repayment posts Dr settlement / Cr receivable, whose trigger locks the two accounts in id order. Unless the
funds-out locks its accounts in id order up front too, the two wait on each other (PostgreSQL then aborts one
with a deadlock error).
"""

from datetime import date
from decimal import Decimal

import pytest

from funding.models import AdvanceStatus, CreditLine, Payout
from funding.services.advances import advance_finish_disbursement, advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from tests.factories import calendar_and_business_date, company_with_line, payout_inputs
from tests.lock_helpers import queued_behind_a_held_row, race
from tests.money_helpers import (
    advance_repay_in_full,
    advance_start_disbursing,
    payout_resolve,
    payout_send,
    settlement_deposit,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal
TODAY = date(2026, 11, 25)
PAIRS = 12


def test_funds_out_and_repayments_of_one_company_do_not_deadlock():
    calendar_and_business_date()
    company, line = company_with_line(limit="1000000.00")
    # Advances to repay: fully disbursed from the line.
    to_repay = []
    for n in range(PAIRS):
        advance = advance_request(company=company, external_id=f"R{n}", amount=D("1000.00"),
                                  payouts=payout_inputs("1000.00"), use_own_funds=False)
        advance_start_disbursing(advance=advance)
        payout = Payout.objects.get(advance=advance)
        payout_send(payout=payout, business_date=TODAY)
        payout_resolve(payout=payout, outcome="succeeded", business_date=TODAY)
        to_repay.append(advance_finish_disbursement(advance_id=advance.pk, business_date=TODAY))
    # Advances to send: each partly funded by a 100.00 own-funds hold on the settlement account.
    to_send = []
    for n in range(PAIRS):
        settlement_deposit(company=company, amount="100.00", business_date=TODAY)
        advance = advance_request(company=company, external_id=f"S{n}", amount=D("1000.00"),
                                  payouts=payout_inputs("1000.00"))
        assert advance.own_funds_amount == D("100.00")
        to_send.append(Payout.objects.get(advance=advance_start_disbursing(advance=advance)))
    # The repayments' money arrives first, so that no repayment waits for a deposit.
    settlement_deposit(company=company, amount=sum((a.advanced_disbursed + a.fee for a in to_repay), D(0)),
                       business_date=TODAY)

    def send_and_confirm(payout) -> None:
        # Funds out, then the success that draws the line's hold (contract 1.7: reserved until known).
        payout_send(payout=payout, business_date=TODAY)
        payout_resolve(payout=payout, outcome="succeeded", business_date=TODAY)

    outcomes = race(*[lambda a=a: advance_repay_in_full(advance=a, business_date=TODAY) for a in to_repay],
                    *[lambda p=p: send_and_confirm(p) for p in to_send])
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    assert errors == []
    line = CreditLine.objects.get(pk=line.pk)
    receivable = Account.objects.get(kind=AccountKind.ADVANCE_RECEIVABLE, owner=company.code)
    assert line.outstanding == receivable.balance == D("900.00") * PAIRS
    assert line.reserved == D("0.00")
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)
    assert settlement.debits_pending == D("0.00")
    assert settlement.balance == D("0.00")
    assert set(a.status for a in type(to_repay[0]).objects.filter(external_id__startswith="R")) == {
        AdvanceStatus.REPAID}
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def test_funds_out_and_repayment_interleaved_the_worst_way_do_not_deadlock():
    """Deterministic: a third connection holds the credit line's row, so the final failure of a payout whose
    funds were out (the mirror of funds out, then the line's hold released) stops right after its account locks;
    the repayment then starts and takes its locks; then the line is let go."""
    calendar_and_business_date()
    company, line = company_with_line(limit="1000000.00")
    repay = advance_request(company=company, external_id="R", amount=D("1000.00"),
                            payouts=payout_inputs("1000.00"), use_own_funds=False)
    advance_start_disbursing(advance=repay)
    payout = Payout.objects.get(advance=repay)
    payout_send(payout=payout, business_date=TODAY)
    payout_resolve(payout=payout, outcome="succeeded", business_date=TODAY)
    repay = advance_finish_disbursement(advance_id=repay.pk, business_date=TODAY)
    settlement_deposit(company=company, amount="100.00", business_date=TODAY)
    send = advance_request(company=company, external_id="S", amount=D("1000.00"),
                           payouts=payout_inputs("1000.00"))
    assert send.own_funds_amount == D("100.00")
    to_send = Payout.objects.get(advance=advance_start_disbursing(advance=send))
    payout_send(payout=to_send, business_date=TODAY)
    settlement_deposit(company=company, amount=repay.advanced_disbursed + repay.fee, business_date=TODAY)

    errors = queued_behind_a_held_row(
        CreditLine.objects.filter(pk=line.pk),
        lambda: payout_resolve(payout=to_send, outcome="failed", business_date=TODAY),
        lambda: advance_repay_in_full(advance=repay, business_date=TODAY),
    )
    assert errors == []
    line = CreditLine.objects.get(pk=line.pk)
    assert (line.reserved, line.outstanding) == (D("0.00"), D("0.00"))
    assert Account.objects.get(kind=AccountKind.ADVANCE_RECEIVABLE, owner=company.code).balance == D("0.00")
    assert trial_balance() == {"CNY": D("0.00")}
