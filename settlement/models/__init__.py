"""Settlement's models: channels, payout attempts and their manual reviews, channel statements and
reconciliation, repayments, nightly job runs, and the simulated channels' bank side."""

from settlement.models.channels import (
    Channel,
    ChannelChangeKind,
    ChannelChangeRequest,
    ChannelChangeStatus,
    ChannelErrorMapping,
    ErrorDecision,
)
from settlement.models.jobs import JobName, JobRun, JobRunStatus
from settlement.models.margin import MarginSetOff, MarginSetOffStatus
from settlement.models.payouts import LIVE_ATTEMPT_STATES, AttemptStatus, PayoutAttempt
from settlement.models.reconciliation import ChannelStatement, ReconciliationItem, ReconClass, StatementSource
from settlement.models.repayments import Repayment, RepaymentAllocation, RepaymentSource
from settlement.models.reviews import ManualReview, ManualReviewOutcome, ManualReviewStatus
from settlement.models.simulator import SimulatedChannelTransfer, SimulatedTransferStatus

__all__ = [
    "LIVE_ATTEMPT_STATES",
    "AttemptStatus",
    "Channel",
    "ChannelChangeKind",
    "ChannelChangeRequest",
    "ChannelChangeStatus",
    "ChannelErrorMapping",
    "ChannelStatement",
    "ErrorDecision",
    "JobName",
    "JobRun",
    "JobRunStatus",
    "ManualReview",
    "MarginSetOff",
    "MarginSetOffStatus",
    "ManualReviewOutcome",
    "ManualReviewStatus",
    "PayoutAttempt",
    "ReconClass",
    "ReconciliationItem",
    "Repayment",
    "RepaymentAllocation",
    "RepaymentSource",
    "SimulatedChannelTransfer",
    "SimulatedTransferStatus",
    "StatementSource",
]
