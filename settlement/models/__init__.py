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
from settlement.models.integrity import IntegrityCheckRun
from settlement.models.jobs import JobName, JobRun, JobRunStatus
from settlement.models.margin import MarginSetOff, MarginSetOffStatus
from settlement.models.payouts import LIVE_ATTEMPT_STATES, AttemptStatus, PayoutAttempt
from settlement.models.reconciliation import (
    UNMATCHED_LEDGER_MOVEMENT,
    UNMATCHED_STATEMENT_LINE,
    ChannelStatement,
    ExceptionSource,
    ExceptionStatus,
    ReconciliationException,
    ReconciliationItem,
    ReconClass,
    StatementSource,
)
from settlement.models.repayments import Repayment, RepaymentAllocation, RepaymentSource
from settlement.models.returns import PayoutReturn, PayoutReturnRequest, PayoutReturnRequestStatus, ReturnSource
from settlement.models.reviews import ManualReview, ManualReviewOutcome, ManualReviewStatus
from settlement.models.simulator import SimulatedChannelTransfer, SimulatedTransferStatus

__all__ = [
    "UNMATCHED_LEDGER_MOVEMENT",
    "UNMATCHED_STATEMENT_LINE",
    "ExceptionSource",
    "ExceptionStatus",
    "IntegrityCheckRun",
    "ReconciliationException",
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
    "PayoutReturn",
    "PayoutReturnRequest",
    "PayoutReturnRequestStatus",
    "ReconClass",
    "ReconciliationItem",
    "Repayment",
    "RepaymentAllocation",
    "RepaymentSource",
    "ReturnSource",
    "SimulatedChannelTransfer",
    "SimulatedTransferStatus",
    "StatementSource",
]
