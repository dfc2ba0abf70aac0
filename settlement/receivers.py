"""Settlement's answers to funding's signals (connected in SettlementConfig.ready)."""

from django.db import transaction

from funding.models import Advance, BankStatementImport
from settlement.services.disbursement.scheduling import advance_schedule_dispatch
from settlement.services.reconciliation_queue import bank_clearing_reconcile


def on_advance_reserved(sender, *, advance: Advance, **kwargs) -> None:
    """A new advance's payouts are pending: dispatch them once its transaction has committed."""
    advance_id, currency = advance.pk, advance.currency
    payouts = len(getattr(advance, "created_payouts", None) or []) or 1
    transaction.on_commit(
        lambda: advance_schedule_dispatch(advance_id=advance_id, payouts=payouts, currency=currency)
    )


def on_bank_statement_imported(sender, *, statement: BankStatementImport, value_dates: list, **kwargs) -> str:
    """Reconcile the bank clearing account for the value dates the file brought (those with a line of the
    clearing account's own statement); returns the summary the import prints."""
    if not value_dates:
        return ""
    result = bank_clearing_reconcile(value_dates=value_dates)
    return result.summary() if result.dates else ""
