"""Funding's models: companies, credit lines, advances and their payout instructions, the business calendar,
the companies' bank statements, audit and the webhook outbox."""

from funding.models.advances import (
    ADVANCE_CLEARABLE_STATES,
    ADVANCE_COLLECTABLE_STATES,
    ADVANCE_DUE_STATES,
    ADVANCE_OPEN_PAYOUT_STATES,
    ADVANCE_REPAYABLE_STATES,
    Advance,
    AdvanceStatus,
    new_advance_id,
)
from funding.models.audit import AuditEvent
from funding.models.bank_statements import BankStatementImport, BankStatementLine, StatementDirection
from funding.models.calendar import (
    BusinessDay,
    CalendarChangeKind,
    CalendarChangeRequest,
    CalendarChangeStatus,
    CalendarDay,
    CalendarDayKind,
    CalendarYear,
)
from funding.models.common import MONEY, RATE, new_public_id
from funding.models.companies import (
    Company,
    CompanyChangeKind,
    CompanyChangeRequest,
    CompanyChangeStatus,
    CompanyStatus,
)
from funding.models.credit_lines import (
    DEFAULT_THRESHOLDS,
    LIVE_LINE_STATES,
    ChangeRequestKind,
    ChangeRequestStatus,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
    LimitFactorSnapshot,
    LimitFactorTrigger,
)
from funding.models.events import WebhookEvent, WebhookEventStatus
from funding.models.overdue import AgingBucket, AgingSnapshot, PenaltyAccrual
from funding.models.payouts import (
    FINAL_PAYOUT_STATES,
    Payout,
    PayoutAttemptView,
    PayoutStatus,
    advance_disbursement_open_sql,
    new_payout_id,
)

__all__ = [
    "ADVANCE_CLEARABLE_STATES",
    "ADVANCE_COLLECTABLE_STATES",
    "ADVANCE_DUE_STATES",
    "ADVANCE_OPEN_PAYOUT_STATES",
    "ADVANCE_REPAYABLE_STATES",
    "DEFAULT_THRESHOLDS",
    "FINAL_PAYOUT_STATES",
    "advance_disbursement_open_sql",
    "LIVE_LINE_STATES",
    "MONEY",
    "RATE",
    "Advance",
    "AdvanceStatus",
    "AgingBucket",
    "AgingSnapshot",
    "AuditEvent",
    "BankStatementImport",
    "BankStatementLine",
    "BusinessDay",
    "CalendarChangeKind",
    "CalendarChangeRequest",
    "CalendarChangeStatus",
    "CalendarDay",
    "CalendarDayKind",
    "CalendarYear",
    "ChangeRequestKind",
    "ChangeRequestStatus",
    "Company",
    "CompanyChangeKind",
    "CompanyChangeRequest",
    "CompanyChangeStatus",
    "CompanyStatus",
    "CreditLine",
    "CreditLineChangeRequest",
    "CreditLineStatus",
    "LimitFactorSnapshot",
    "LimitFactorTrigger",
    "PenaltyAccrual",
    "Payout",
    "PayoutAttemptView",
    "PayoutStatus",
    "StatementDirection",
    "WebhookEvent",
    "WebhookEventStatus",
    "new_advance_id",
    "new_payout_id",
    "new_public_id",
]
