from decimal import Decimal

from django.db import connection
from django.db.models import Q, Sum

from ledger.models import Account, Entry


def trial_balance() -> dict[str, Decimal]:
    """Sum of debits minus credits per currency over all entries: zero for every currency, always."""
    rows = (
        Entry.objects.values("currency")
        .annotate(d=Sum("amount", filter=Q(direction="D")), c=Sum("amount", filter=Q(direction="C")))
        .order_by("currency")
    )
    return {row["currency"]: (row["d"] or Decimal(0)) - (row["c"] or Decimal(0)) for row in rows}


def account_totals_drift() -> list[tuple[str, Decimal, Decimal, Decimal, Decimal]]:
    """Accounts whose stored totals differ from their entries: (code, stored D, entries D, stored C, entries C)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.code, a.debits_posted, coalesce(s.d, 0), a.credits_posted, coalesce(s.c, 0)
              FROM ledger_account a
              LEFT JOIN (
                SELECT account_id,
                       sum(amount) FILTER (WHERE direction = 'D') AS d,
                       sum(amount) FILTER (WHERE direction = 'C') AS c
                  FROM ledger_entry GROUP BY account_id
              ) s ON s.account_id = a.id
             WHERE a.debits_posted <> coalesce(s.d, 0) OR a.credits_posted <> coalesce(s.c, 0)
             ORDER BY a.code
            """
        )
        return list(cursor.fetchall())


def account_balance(*, kind: str, owner: str = "", currency: str = "CNY") -> Decimal:
    account = Account.objects.filter(kind=kind, owner=owner, currency=currency).first()
    return account.balance if account else Decimal("0.00")
