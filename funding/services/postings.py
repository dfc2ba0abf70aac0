"""Funding's own ledger postings (the payouts' postings belong to settlement, which executes them)."""

from datetime import date
from decimal import Decimal

from funding.models import Advance
from ledger.models import Account, AccountKind
from ledger.services import account_get_or_create, credit, debit, ledger_post


def company_account(*, advance: Advance, kind: str) -> Account:
    """The company's account of `kind` in the advance's currency (created with the company)."""
    return Account.objects.get(kind=kind, owner=advance.company.code, currency=advance.currency)


def advance_post_fee(*, advance: Advance, fee: Decimal, business_date: date, reference: str | None = None) -> None:
    """The advance's fee: Dr fee receivable / Cr fee income (nothing for a zero fee).

    `reference`: default `<advance>:fee`; a partly settled advance's later parts post under their own."""
    if fee <= 0:
        return
    ledger_post(
        kind="advance.fee",
        reference=reference or f"{advance.public_id}:fee",
        business_date=business_date,
        description=f"fee on {advance.public_id}",
        legs=[
            debit(company_account(advance=advance, kind=AccountKind.FEE_RECEIVABLE), fee),
            credit(account_get_or_create(kind=AccountKind.FEE_INCOME), fee),
        ],
    )
