from settlement.models.channels import Channel
from settlement.models.payouts import (
    FINAL_PAYOUT_STATES,
    LIVE_ATTEMPT_STATES,
    AttemptStatus,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)

__all__ = ["FINAL_PAYOUT_STATES", "LIVE_ATTEMPT_STATES", "AttemptStatus", "Channel", "Payout", "PayoutAttempt", "PayoutStatus"]
