from settlement.models.channels import Channel
from settlement.models.jobs import AgingBucket, AgingSnapshot, JobName, JobRun, JobRunStatus
from settlement.models.payouts import (
    FINAL_PAYOUT_STATES,
    LIVE_ATTEMPT_STATES,
    AttemptStatus,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)
from settlement.models.repayments import PenaltyAccrual, Repayment, RepaymentAllocation, RepaymentSource
from settlement.models.statements import BankStatementImport, BankStatementLine, StatementDirection

__all__ = [
    "FINAL_PAYOUT_STATES",
    "LIVE_ATTEMPT_STATES",
    "AgingBucket",
    "AgingSnapshot",
    "AttemptStatus",
    "BankStatementImport",
    "BankStatementLine",
    "Channel",
    "JobName",
    "JobRun",
    "JobRunStatus",
    "Payout",
    "PayoutAttempt",
    "PayoutStatus",
    "PenaltyAccrual",
    "Repayment",
    "RepaymentAllocation",
    "RepaymentSource",
    "StatementDirection",
]
