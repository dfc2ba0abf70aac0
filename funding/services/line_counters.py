"""The credit line's counters. Each change is one conditional UPDATE; nothing reads then writes.

`limit_ceiling` (the CHECK constraint's bound) is lowered back towards the effective limit by every change
that reduces usage, and never raised by a hold.
"""

from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models import Case, DecimalField, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from funding.models import MONEY, BusinessDay, CreditLine
from ledger.money import money

_MONEY = DecimalField(**MONEY)


class CounterError(Exception):
    """A counter change that must always succeed did not: a bug, never a business rejection."""


def _update(line_id: int, **changes) -> None:
    if CreditLine.objects.filter(pk=line_id).update(**changes) != 1:
        raise CounterError(f"credit line {line_id} counters not updated: {changes}")


def line_hold(*, line_id: int, amount: Decimal, business_date: date | None = None) -> bool:
    """Reserve `amount` if the line is active, reserved + outstanding stays within the effective limit and the
    line's advances of `business_date` (default: the current business date) within its daily cap.

    One conditional UPDATE, in SQL (credit_line_hold, funding/sql/advance_reserve.py) because advance_reserve()
    takes its holds with the same function.
    """
    if business_date is None:
        business_date = BusinessDay.objects.values_list("current", flat=True).first() or timezone.localdate()
    with connection.cursor() as cursor:
        cursor.execute("SELECT held FROM credit_line_hold(%s, %s, %s)", [line_id, money(amount), business_date])
        return cursor.fetchone()[0]


def line_release(*, line_id: int, amount: Decimal, advanced_on: date | None = None) -> None:
    """Give back a hold that will not be used (cancellation, final payout failure, sent or not).

    `advanced_on`: a cancelled advance's business date; if the line's daily counter is still that date's, the
    amount no longer counts against the daily cap (contract 1.7: cancelled advances are excluded).
    """
    amount = money(amount)
    if not amount:
        return
    changes = {
        "reserved": F("reserved") - amount,
        "limit_ceiling": Greatest(F("effective_limit"), F("reserved") + F("outstanding") - amount),
    }
    if advanced_on is not None:
        today = Case(When(advanced_on=advanced_on, then=F("advanced_today") - amount), default=F("advanced_today"),
                     output_field=_MONEY)
        changes["advanced_today"] = today
        changes["daily_cap_ceiling"] = Case(When(daily_cap__isnull=True, then=Value(None, output_field=_MONEY)),
                                            default=Greatest(F("daily_cap"), today), output_field=_MONEY)
    _update(line_id, **changes)


def line_draw(*, line_id: int, amount: Decimal) -> None:
    """A payout succeeded (its outcome is known): the hold becomes outstanding principal. Usage is unchanged.

    Not at hand-off: an amount whose outcome is not yet known stays reserved (contract 1.7)."""
    amount = money(amount)
    if amount:
        _update(line_id, reserved=F("reserved") - amount, outstanding=F("outstanding") + amount)


def line_reduce_outstanding(*, line_id: int, amount: Decimal) -> None:
    """Principal repaid."""
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


def line_set_daily_cap(*, line_id: int, daily_cap: Decimal | None, business_date: date) -> None:
    """A new daily cap (None: none). A cap below what the line already advanced on `business_date` blocks
    new holds that day and touches nothing already accepted (the ceiling keeps the CHECK true)."""
    today = Case(When(advanced_on=business_date, then=F("advanced_today")),
                 default=Value(Decimal("0.00"), output_field=_MONEY), output_field=_MONEY)
    if daily_cap is None:
        _update(line_id, daily_cap=None, daily_cap_ceiling=None, advanced_today=today, advanced_on=business_date)
        return
    daily_cap = money(daily_cap)
    _update(line_id, daily_cap=daily_cap, daily_cap_ceiling=Greatest(Value(daily_cap, output_field=_MONEY), today),
            advanced_today=today, advanced_on=business_date)
