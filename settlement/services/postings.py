"""Ledger postings and credit-line counter moves for each payout outcome.

Each function runs inside the caller's transaction, after the caller has locked the payout and moved its
FSM, so that the state change and its journal commit together.

- funds out (handed to a channel): Dr settlement (own part), Dr advance receivable (bank part);
  Cr payouts in transit of the channel. The own-funds hold becomes a posting; the line's part stays
  `reserved` (contract 1.7: an amount whose outcome is not yet known stays reserved).
- confirmed: Dr payouts in transit (the amount), Dr channel cost (the channel's fee); Cr channel clearing (both):
  one journal per payout, the fee being part of what the channel confirms.
  The line's hold becomes outstanding (line_draw): the line's `outstanding` is what succeeded payouts paid,
  i.e. the advance-receivable balance less the bank parts of payouts out whose outcome is not yet known.
- returned (explicit failure): the mirror of funds out. Before a retry the holds are taken again (the line's
  part never left `reserved`); after a final failure they are released to the company and the credit line.
The advance's fee (all payouts final) is funding's posting: funding.services.postings.advance_post_fee.

One definition per fact: `*_posting` builds the journal of one payout from locked accounts; the functions below
post one payout with it, the set-based paths (disbursement.claim, disbursement.apply) post a batch of them with
one `ledger_post_many`.
"""

from datetime import date
from decimal import Decimal

from funding.models import Advance, Payout
from funding.services.line_counters import line_draw, line_release
from funding.services.postings import company_account
from ledger.models import Account, AccountKind
from ledger.services import (
    Posting,
    account_get_or_create,
    account_hold,
    account_release_hold,
    accounts_lock,
    credit,
    debit,
    ledger_post_many,
)
from settlement.models import Channel


class PostingError(Exception):
    pass


def _company_account(advance: Advance, kind: str) -> Account:
    return company_account(advance=advance, kind=kind)


def channel_account(channel: Channel, kind: str) -> Account:
    return account_get_or_create(kind=kind, owner=channel.code)


def funds_out_posting(
    *, payout: Payout, serial: str, channel_code: str, settlement: Account, receivable: Account,
    in_transit: Account, business_date: date,
) -> Posting:
    return Posting(
        kind="payout.funds_out",
        reference=f"{serial}:out",
        business_date=business_date,
        description=f"payout {payout.public_id} handed to {channel_code}",
        legs=[
            debit(settlement, payout.own_funds_amount),
            debit(receivable, payout.advanced_amount),
            credit(in_transit, payout.amount),
        ],
    )


def confirmed_posting(
    *, payout: Payout, serial: str, fee: Decimal, channel_code: str, in_transit: Account, clearing: Account,
    cost: Account, business_date: date,
) -> Posting:
    """A zero fee's leg is dropped by the ledger."""
    return Posting(
        kind="payout.confirmed",
        reference=f"{serial}:confirmed",
        business_date=business_date,
        description=f"payout {payout.public_id} confirmed by {channel_code}, fee {fee}",
        legs=[debit(in_transit, payout.amount), debit(cost, fee), credit(clearing, payout.amount + fee)],
    )


def returned_posting(
    *, payout: Payout, serial: str, channel_code: str, in_transit: Account, settlement: Account,
    receivable: Account, business_date: date,
) -> Posting:
    return Posting(
        kind="payout.returned",
        reference=f"{serial}:returned",
        business_date=business_date,
        description=f"payout {payout.public_id} failed at {channel_code}",
        legs=[
            debit(in_transit, payout.amount),
            credit(settlement, payout.own_funds_amount),
            credit(receivable, payout.advanced_amount),
        ],
    )


def payout_post_funds_out(*, payout: Payout, channel: Channel, serial: str, business_date: date) -> None:
    advance = payout.advance
    if payout.funds_out:
        raise PostingError(f"payout {payout.public_id} funds are already out")
    settlement = _company_account(advance, AccountKind.SETTLEMENT)
    receivable = _company_account(advance, AccountKind.ADVANCE_RECEIVABLE)
    in_transit = channel_account(channel, AccountKind.PAYOUTS_IN_TRANSIT)
    # Lock the accounts in id order before releasing the hold on the settlement account: otherwise this
    # holds settlement while waiting for the receivable, and a repayment (whose posting locks receivable,
    # then settlement) waits the other way round: a deadlock.
    accounts_lock(settlement, receivable, in_transit)
    if payout.own_funds_amount:
        account_release_hold(account=settlement, amount=payout.own_funds_amount)
    ledger_post_many(postings=[funds_out_posting(
        payout=payout, serial=serial, channel_code=channel.code, settlement=settlement, receivable=receivable,
        in_transit=in_transit, business_date=business_date,
    )])
    payout.funds_out = True
    # The funds leave on this business date: the fee counts days from here (contract 1.7). A retry after a
    # rejection leaves again, later: the attempt that pays sets the date last.
    payout.value_date = business_date


def payout_post_confirmed(
    *, payout: Payout, channel: Channel, serial: str, fee: Decimal, business_date: date
) -> None:
    ledger_post_many(postings=[confirmed_posting(
        payout=payout, serial=serial, fee=fee, channel_code=channel.code,
        in_transit=channel_account(channel, AccountKind.PAYOUTS_IN_TRANSIT),
        clearing=channel_account(channel, AccountKind.CHANNEL_CLEARING),
        cost=account_get_or_create(kind=AccountKind.CHANNEL_COST), business_date=business_date,
    )])
    # The outcome is known: the line's part is drawn (owed, due on the advance's due date or, when it succeeds
    # later, at the next collection).
    line_draw(line_id=payout.advance.credit_line_id, amount=payout.advanced_amount)


def payout_post_returned(
    *, payout: Payout, channel: Channel, serial: str, business_date: date, final: bool
) -> None:
    """Funds of an explicitly failed attempt come back. `final`: release them; else hold them for a retry."""
    advance = payout.advance
    if not payout.funds_out:
        raise PostingError(f"payout {payout.public_id} has no funds out to return")
    settlement = _company_account(advance, AccountKind.SETTLEMENT)
    ledger_post_many(postings=[returned_posting(
        payout=payout, serial=serial, channel_code=channel.code,
        in_transit=channel_account(channel, AccountKind.PAYOUTS_IN_TRANSIT), settlement=settlement,
        receivable=_company_account(advance, AccountKind.ADVANCE_RECEIVABLE), business_date=business_date,
    )])
    payout.funds_out = False
    if final:
        line_release(line_id=advance.credit_line_id, amount=payout.advanced_amount)
        return
    # The credit just posted makes room for exactly this hold, under the same row lock.
    if not account_hold(account=settlement, amount=payout.own_funds_amount):
        raise PostingError(f"could not re-hold own funds of payout {payout.public_id}")


def payout_release_unsent(*, payout: Payout) -> None:
    """A payout that finally failed without its funds out: give back its holds."""
    advance = payout.advance
    if payout.funds_out:
        raise PostingError(f"payout {payout.public_id} funds are out; return them first")
    if payout.own_funds_amount:
        account_release_hold(
            account=_company_account(advance, AccountKind.SETTLEMENT), amount=payout.own_funds_amount
        )
    line_release(line_id=advance.credit_line_id, amount=payout.advanced_amount)
