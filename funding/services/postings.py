"""Funding's own ledger postings (the payouts' postings belong to settlement, which executes them)."""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db.models import Q

from funding.models import Advance
from ledger.models import Account, AccountKind
from ledger.services import Posting, account_get_or_create, credit, debit, ledger_post_many


def company_account(*, advance: Advance, kind: str) -> Account:
    """The company's account of `kind` in the advance's currency (created with the company)."""
    return Account.objects.get(kind=kind, owner=advance.company.code, currency=advance.currency)


def advance_post_fee(*, advance: Advance, fee: Decimal, business_date: date, reference: str | None = None) -> None:
    """The advance's fee: Dr fee receivable / Cr fee income (nothing for a zero fee).

    `reference`: default `<advance>:fee`; a partly settled advance's later parts post under their own."""
    advances_post_fees(fees=[(advance, fee, reference or f"{advance.public_id}:fee")], business_date=business_date)


def advances_post_fees(*, fees: list[tuple[Advance, Decimal, str]], business_date: date) -> None:
    """Many advances' fees (advance, fee, journal reference each) with one ledger_post_many: Dr the company's
    fee receivable / Cr fee income, the accounts read with one statement. Zero fees post nothing. The caller
    holds the locks the posting needs (the totals trigger takes the accounts in id order)."""
    fees = [(advance, fee, reference) for advance, fee, reference in fees if fee > 0]
    if not fees:
        return
    accounts = {
        (a.kind, a.owner, a.currency): a
        for a in Account.objects.filter(
            Q(kind=AccountKind.FEE_RECEIVABLE, owner__in={advance.company.code for advance, _, _ in fees})
            | Q(kind=AccountKind.FEE_INCOME, owner="", currency=settings.ENGINE_CURRENCY)
        )
    }
    income = accounts.get((AccountKind.FEE_INCOME, "", settings.ENGINE_CURRENCY)) or account_get_or_create(
        kind=AccountKind.FEE_INCOME)
    ledger_post_many(postings=[
        Posting(
            kind="advance.fee",
            reference=reference,
            business_date=business_date,
            description=f"fee on {advance.public_id}",
            legs=[
                debit(accounts[(AccountKind.FEE_RECEIVABLE, advance.company.code, advance.currency)], fee),
                credit(income, fee),
            ],
        )
        for advance, fee, reference in fees
    ])
