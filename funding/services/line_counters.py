"""The credit line's counters. Each change is one conditional UPDATE; nothing reads then writes.

`limit_ceiling` (the CHECK constraint's bound) is lowered back towards the effective limit by every change
that reduces usage, and never raised by a hold.
"""

from decimal import Decimal

from django.db import connection
from django.db.models import F
from django.db.models.functions import Greatest

from funding.models import CreditLine
from ledger.money import money


class CounterError(Exception):
    """A counter change that must always succeed did not: a bug, never a business rejection."""


def _update(line_id: int, **changes) -> None:
    if CreditLine.objects.filter(pk=line_id).update(**changes) != 1:
        raise CounterError(f"credit line {line_id} counters not updated: {changes}")


def line_hold(*, line_id: int, amount: Decimal) -> bool:
    """Reserve `amount` if the line is active and reserved + outstanding stays within the effective limit.

    One conditional UPDATE, in SQL (credit_line_hold, funding/sql/advance_reserve.py) because advance_reserve()
    takes its holds with the same function.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT credit_line_hold(%s, %s)", [line_id, money(amount)])
        return cursor.fetchone()[0]


def line_release(*, line_id: int, amount: Decimal) -> None:
    """Give back a hold that will not be used (cancellation, final payout failure)."""
    amount = money(amount)
    if amount:
        _update(
            line_id,
            reserved=F("reserved") - amount,
            limit_ceiling=Greatest(F("effective_limit"), F("reserved") + F("outstanding") - amount),
        )


def line_draw(*, line_id: int, amount: Decimal) -> None:
    """Funds left the bank: the hold becomes outstanding principal. Usage is unchanged."""
    amount = money(amount)
    if amount:
        _update(line_id, reserved=F("reserved") - amount, outstanding=F("outstanding") + amount)


def line_undraw(*, line_id: int, amount: Decimal) -> None:
    """Funds came back for a retry: outstanding becomes a hold again. Usage is unchanged."""
    amount = money(amount)
    if amount:
        _update(line_id, reserved=F("reserved") + amount, outstanding=F("outstanding") - amount)


def line_reduce_outstanding(*, line_id: int, amount: Decimal) -> None:
    """Principal repaid, or funds of a finally failed payout returned."""
    amount = money(amount)
    if amount:
        _update(
            line_id,
            outstanding=F("outstanding") - amount,
            limit_ceiling=Greatest(F("effective_limit"), F("reserved") + F("outstanding") - amount),
        )


def line_set_limits(*, line_id: int, approved_limit: Decimal, effective_limit: Decimal) -> None:
    """New limits. A limit below current usage blocks new holds and touches nothing already drawn."""
    approved_limit, effective_limit = money(approved_limit), money(effective_limit)
    _update(
        line_id,
        approved_limit=approved_limit,
        effective_limit=effective_limit,
        limit_ceiling=Greatest(effective_limit, F("reserved") + F("outstanding")),
    )
