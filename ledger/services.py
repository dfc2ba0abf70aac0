"""The only way to write to the ledger. Callers run these inside the transaction of the state change."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from config.db import prepared_cursor
from ledger.models import (
    ACCOUNT_TYPE_OF_KIND,
    Account,
    AccountKind,
    EntryDirection,
    JournalTransaction,
)
from ledger.money import money

# Liability accounts that belong to a customer may never be overdrawn.
NO_OVERDRAFT_KINDS = {AccountKind.SETTLEMENT, AccountKind.MARGIN}


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Leg:
    account: Account
    direction: str  # EntryDirection
    amount: Decimal


def debit(account: Account, amount: Decimal) -> Leg:
    return Leg(account, EntryDirection.DEBIT, amount)


def credit(account: Account, amount: Decimal) -> Leg:
    return Leg(account, EntryDirection.CREDIT, amount)


def account_get_or_create(
    *, kind: str, owner: str = "", currency: str | None = None, external_account_no: str = ""
) -> Account:
    currency = currency or settings.ENGINE_CURRENCY
    account, created = Account.objects.get_or_create(
        kind=kind,
        owner=owner,
        currency=currency,
        defaults={
            "code": f"{owner}:{kind}:{currency}" if owner else f"bank:{kind}:{currency}",
            "name": f"{AccountKind(kind).label} {owner}".strip(),
            "type": ACCOUNT_TYPE_OF_KIND[AccountKind(kind)],
            "external_account_no": external_account_no,
            "debits_must_not_exceed_credits": kind in NO_OVERDRAFT_KINDS,
        },
    )
    if not created and external_account_no and account.external_account_no != external_account_no:
        account.external_account_no = external_account_no
        account.save(update_fields=["external_account_no"])
    return account


def ledger_post(
    *,
    kind: str,
    reference: str,
    business_date: date,
    legs: Sequence[Leg],
    description: str = "",
    reverses: JournalTransaction | None = None,
) -> JournalTransaction:
    """Post one balanced journal transaction. Zero-amount legs are dropped; amounts are quantized here.

    PostgreSQL checks the balance at COMMIT and updates the account totals; this function refuses an
    obviously unbalanced posting early so that the caller gets a clear Python error. The same statement as
    `ledger_post_many`, inside a savepoint: a caller may catch the IntegrityError of a reference already posted
    and go on.
    """
    posting = Posting(kind=kind, reference=reference, business_date=business_date, legs=legs,
                      description=description, reverses_id=reverses.pk if reverses is not None else None)
    with transaction.atomic():
        (row,) = _insert_postings([(posting, _checked_legs(reference, legs))])
    journal_id, _, posted_xact, created_at = row
    # The row as stored, built as Django builds a loaded row (the INSERT returned what the database set).
    journal = JournalTransaction.from_db(
        connection.alias,
        ["id", "kind", "description", "business_date", "reference", "reverses_id", "posted_xact", "created_at"],
        [journal_id, kind, description[:255], business_date, reference, posting.reverses_id, posted_xact,
         created_at],
    )
    if reverses is not None:
        journal.reverses = reverses
    return journal


@dataclass(frozen=True)
class Posting:
    kind: str
    reference: str
    business_date: date
    legs: Sequence[Leg]
    description: str = ""
    reverses_id: int | None = None


def _checked_legs(reference: str, legs: Sequence[Leg]) -> list[Leg]:
    legs = [Leg(leg.account, leg.direction, money(leg.amount)) for leg in legs]
    if any(leg.amount < 0 for leg in legs):
        raise LedgerError("a leg amount is negative; swap its direction instead")
    legs = [leg for leg in legs if leg.amount > 0]
    if len(legs) < 2:
        raise LedgerError(f"posting {reference} needs at least two non-zero legs")
    totals: dict[str, Decimal] = {}
    for leg in legs:
        sign = 1 if leg.direction == EntryDirection.DEBIT else -1
        totals[leg.account.currency] = totals.get(leg.account.currency, Decimal(0)) + sign * leg.amount
    if any(total != 0 for total in totals.values()):
        raise LedgerError(f"posting {reference} does not balance: {totals}")
    return legs


def ledger_post_many(*, postings: Sequence[Posting]) -> list[int]:
    """Post many balanced journal transactions with ONE statement whatever their number; returns the journals'
    ids. Same rules as `ledger_post`: the database stamps each journal's transaction, checks every journal's
    balance once at COMMIT, and the totals trigger runs once for all the entries (accounts in id order)."""
    checked = [(posting, _checked_legs(posting.reference, posting.legs)) for posting in postings]
    if not checked:
        return []
    with transaction.atomic(savepoint=False):  # all or nothing with the caller
        return [row[0] for row in _insert_postings(checked)]


# One JSON parameter: PostgreSQL parses it in C, where arrays of Python values bound one by one cost the request
# path ~8 us a row (issue 15). Amounts travel as their exact decimal text.
_INSERT_POSTINGS = """
WITH input AS (SELECT %s::json AS doc),
journals AS (
    INSERT INTO ledger_journaltransaction (kind, description, business_date, reference, reverses_id, created_at)
    SELECT j->>0, j->>1, (j->>2)::date, j->>3, (j->>4)::bigint, now()
      FROM input, json_array_elements(input.doc->0) AS j
    RETURNING id, reference, posted_xact, created_at
),
entries AS (
    INSERT INTO ledger_entry (transaction_id, account_id, direction, amount, currency)
    SELECT journals.id, (e->>1)::bigint, e->>2, (e->>3)::numeric, e->>4
      FROM input, json_array_elements(input.doc->1) AS e
      JOIN journals ON journals.reference = e->>0
)
SELECT id, reference, posted_xact, created_at FROM journals
"""


def _insert_postings(checked: list[tuple[Posting, list[Leg]]]) -> list[tuple]:
    """The journals and their entries in one statement; (id, reference, posted_xact, created_at) per journal, in
    the order given."""
    doc = [
        [
            [p.kind, p.description[:255], p.business_date.isoformat(), p.reference, p.reverses_id]
            for p, _ in checked
        ],
        [
            [p.reference, leg.account.pk, leg.direction, str(leg.amount), leg.account.currency]
            for p, legs in checked
            for leg in legs
        ],
    ]
    with prepared_cursor() as cursor:  # one fixed text: planned once per connection
        cursor.execute(_INSERT_POSTINGS, [json.dumps(doc)])
        rows = {row[1]: row for row in cursor.fetchall()}
    return [rows[p.reference] for p, _ in checked]


def ledger_reverse(
    *, journal: JournalTransaction, reference: str, business_date: date, description: str = ""
) -> JournalTransaction:
    """Correct a posted transaction by posting its mirror image; the original stays untouched."""
    legs = [
        Leg(
            entry.account,
            EntryDirection.CREDIT if entry.direction == EntryDirection.DEBIT else EntryDirection.DEBIT,
            entry.amount,
        )
        for entry in journal.entries.select_related("account").order_by("id")
    ]
    return ledger_post(
        kind=f"{journal.kind}.reversal",
        reference=reference,
        business_date=business_date,
        legs=legs,
        description=description or f"reversal of {journal.reference}",
        reverses=journal,
    )


def accounts_lock(*accounts: Account) -> None:
    """Lock accounts in id order, the order the posting trigger uses.

    Call it before touching any of them (a hold release, a posting) when more than one is involved, so that
    two transactions never take the same accounts in opposite orders (a deadlock).
    """
    ids = sorted({account.pk for account in accounts})
    list(Account.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk").values_list("pk"))


def account_hold(*, account: Account, amount: Decimal) -> bool:
    """Hold `amount` of a liability account's available balance with one conditional UPDATE.

    Returns False (and changes nothing) when the balance less existing holds is short.
    """
    amount = money(amount)
    if amount <= 0:
        return True
    updated = Account.objects.filter(
        pk=account.pk,
        credits_posted__gte=F("debits_posted") + F("debits_pending") + amount,
    ).update(debits_pending=F("debits_pending") + amount)
    return updated == 1


def account_release_hold(*, account: Account, amount: Decimal) -> None:
    amount = money(amount)
    if amount <= 0:
        return
    updated = Account.objects.filter(pk=account.pk, debits_pending__gte=amount).update(
        debits_pending=F("debits_pending") - amount
    )
    if updated != 1:
        raise LedgerError(f"cannot release {amount} held on {account.code}: less is held")
