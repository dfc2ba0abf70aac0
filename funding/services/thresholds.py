"""credit_line.threshold_reached (contract 1.7): sent once per business date when utilisation
(reserved + outstanding) / effective_limit first reaches each of the line's thresholds (default 0.80, 0.95).

The SQL function credit_line_thresholds_mark (funding/sql/advance_reserve.py) decides and marks, under the
line's row lock: advance_reserve() calls it after its hold (so an advance costs no round trip more unless a
threshold is reached), and credit_line_thresholds_check after a change that raises utilisation otherwise
(an effective limit cut, at approval or at end of day).
"""

from datetime import date
from decimal import Decimal

from django.db import connection

from funding.models import CreditLine
from funding.services.line_events import credit_line_emit_event


def credit_line_thresholds_emit(*, line_id: int, thresholds: list[Decimal]) -> None:
    """One event per threshold just marked, in the caller's transaction: the line as GET renders it, plus
    `threshold` ("0.80")."""
    line = CreditLine.objects.select_related("company").get(pk=line_id)
    for threshold in sorted(thresholds):
        credit_line_emit_event(line=line, type="credit_line.threshold_reached",
                               extra={"threshold": f"{Decimal(threshold):.2f}"})


def credit_line_thresholds_check(*, line: CreditLine, business_date: date) -> list[Decimal]:
    """Mark and announce the thresholds the line's utilisation reaches now and did not yet on `business_date`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT credit_line_thresholds_mark(%s, %s)", [line.pk, business_date])
        fresh = list(cursor.fetchone()[0] or [])
    if fresh:
        credit_line_thresholds_emit(line_id=line.pk, thresholds=fresh)
    return fresh
