"""Settlement's answers to funding's signals (connected in SettlementConfig.ready)."""

from django.db import transaction

from funding.models import Advance
from settlement.services.disbursement.scheduling import advance_schedule_dispatch


def on_advance_reserved(sender, *, advance: Advance, **kwargs) -> None:
    """A new advance's payouts are pending: dispatch them once its transaction has committed."""
    advance_id = advance.pk
    payouts = len(getattr(advance, "created_payouts", None) or []) or 1
    transaction.on_commit(lambda: advance_schedule_dispatch(advance_id=advance_id, payouts=payouts))
