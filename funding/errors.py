"""Business errors with the stable codes of the contract (section 1.2). The API maps them to responses."""

from typing import Any


class EngineError(Exception):
    code = "engine_error"
    http_status = 422
    default_message = "The request cannot be carried out."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(EngineError):
    code = "validation_error"
    http_status = 400
    default_message = "The request is not valid."


class InsufficientLimit(EngineError):
    code = "insufficient_limit"
    default_message = "The credit line's available limit is less than the amount requested."


class CreditLineFrozen(EngineError):
    code = "credit_line_frozen"
    default_message = "The credit line is frozen: no new advances until it is unfrozen."


class CreditLineInactive(EngineError):
    code = "credit_line_inactive"
    default_message = "There is no active credit line (none approved, suspended or expired)."


class CompanySuspended(EngineError):
    code = "company_suspended"
    default_message = "The company is suspended by the bank: no new advances until it is reactivated."


class OutsideChannelHours(EngineError):
    code = "outside_channel_hours"
    default_message = (
        "No payout channel can pay these payouts on the current business date (amount above every open "
        "channel's limit, or after the channels' cut-off); nothing was reserved."
    )


class BusinessDayClosed(EngineError):
    code = "business_day_closed"
    default_message = "The business day is being closed; try again once the next business day opens."


class CalendarUnavailable(EngineError):
    code = "calendar_unavailable"
    default_message = "The next business day is not known yet (the calendar for that year is not published)."


class DuplicateExternalId(EngineError):
    code = "duplicate_external_id"
    http_status = 409
    default_message = "An advance with this external_id already exists."


class InvalidState(EngineError):
    code = "invalid_state"
    http_status = 409
    default_message = "The resource is not in a state that allows this action."


class NotFound(EngineError):
    code = "not_found"
    http_status = 404
    default_message = "No such resource."


class FourEyesViolation(EngineError):
    code = "four_eyes_violation"
    http_status = 403
    default_message = "The maker of a request cannot approve or reject it."


class DuplicatePendingRequest(EngineError):
    code = "duplicate_pending_request"
    http_status = 409
    default_message = "A request of this kind is already pending for this credit line."
