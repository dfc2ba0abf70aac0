from settlement.models.channels import Channel, ChannelErrorMapping, ErrorDecision
from settlement.models.payouts import (
    FINAL_PAYOUT_STATES,
    LIVE_ATTEMPT_STATES,
    AttemptStatus,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)
from settlement.models.reconciliation import ChannelStatement, ReconciliationItem, ReconClass, StatementSource
from settlement.models.reviews import ManualReview, ManualReviewOutcome, ManualReviewStatus
from settlement.models.simulator import SimulatedChannelTransfer, SimulatedTransferStatus

__all__ = [
    "FINAL_PAYOUT_STATES",
    "LIVE_ATTEMPT_STATES",
    "AttemptStatus",
    "Channel",
    "ChannelErrorMapping",
    "ChannelStatement",
    "ErrorDecision",
    "ManualReview",
    "ManualReviewOutcome",
    "ManualReviewStatus",
    "Payout",
    "PayoutAttempt",
    "PayoutStatus",
    "ReconClass",
    "ReconciliationItem",
    "SimulatedChannelTransfer",
    "SimulatedTransferStatus",
    "StatementSource",
]
