"""Settlement's business refusals with stable codes (contract 1.2 style); funding.errors holds the shared ones."""

from funding.errors import EngineError


class InsufficientMargin(EngineError):
    code = "insufficient_margin"
    default_message = "The amount is above the company's margin-deposit balance."


class NothingOverdue(EngineError):
    code = "nothing_overdue"
    default_message = "The company has no overdue debt to set the margin off against."


class AmountExceedsOverdue(EngineError):
    code = "amount_exceeds_overdue"
    default_message = "The amount is above the company's overdue debt (penalty, fee and principal)."
