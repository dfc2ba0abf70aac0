from settlement.models.channels import Channel, ChannelErrorMapping, ErrorDecision
from settlement.models.jobs import AgingBucket, AgingSnapshot, JobName, JobRun, JobRunStatus
from settlement.models.payouts import (
    FINAL_PAYOUT_STATES,
    LIVE_ATTEMPT_STATES,
    AttemptStatus,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)
from settlement.models.reconciliation import ChannelStatement, ReconciliationItem, ReconClass, StatementSource
from settlement.models.repayments import PenaltyAccrual, Repayment, RepaymentAllocation, RepaymentSource
from settlement.models.reviews import ManualReview, ManualReviewOutcome, ManualReviewStatus
from settlement.models.simulator import SimulatedChannelTransfer, SimulatedTransferStatus
from settlement.models.statements import BankStatementImport, BankStatementLine, StatementDirection

__all__ = [
    "AgingBucket",
    "AgingSnapshot",
    "AttemptStatus",
    "BankStatementImport",
    "BankStatementLine",
    "Channel",
    "ChannelErrorMapping",
    "ChannelStatement",
    "ErrorDecision",
    "FINAL_PAYOUT_STATES",
    "JobName",
    "JobRun",
    "JobRunStatus",
    "LIVE_ATTEMPT_STATES",
    "ManualReview",
    "ManualReviewOutcome",
    "ManualReviewStatus",
    "Payout",
    "PayoutAttempt",
    "PayoutStatus",
    "PenaltyAccrual",
    "ReconClass",
    "ReconciliationItem",
    "Repayment",
    "RepaymentAllocation",
    "RepaymentSource",
    "SimulatedChannelTransfer",
    "SimulatedTransferStatus",
    "StatementDirection",
    "StatementSource",
]
