"""Typed errors: one class per family of the contract's stable error codes (section 1.2).

    ApiError                       every error answer: status, code, message, details, replayed, request_id
    ├── ValidationError            400 validation_error; `details` maps each field (dotted path) to messages
    ├── AuthenticationError        401 authentication_failed, stale_timestamp, replayed_request
    ├── PermissionDenied           403 permission_denied
    ├── NotFound                   404 not_found
    ├── ConflictError              409
    │   ├── IdempotencyError       idempotency_key_reused, request_in_progress
    │   ├── DuplicateExternalId    duplicate_external_id
    │   └── InvalidState           invalid_state
    ├── RequestRefused             422, nothing was held
    │   ├── InsufficientLimit      insufficient_limit: available, requested, daily_remaining
    │   ├── CreditLineFrozen       credit_line_frozen
    │   ├── CreditLineInactive     credit_line_inactive
    │   ├── CompanySuspended       company_suspended
    │   ├── BusinessDayClosed      business_day_closed
    │   ├── CalendarUnavailable    calendar_unavailable
    │   └── OutsideChannelHours    outside_channel_hours
    ├── RateLimited                429 rate_limited: retry_after (seconds)
    └── ServerError                5xx
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class ApiError(Exception):
    """An error answer of the API: `status`, `code` (stable), `message`, `details`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict | None = None,
        replayed: bool = False,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.replayed = replayed  # the stored answer of an earlier request with the same Idempotency-Key
        self.request_id = request_id  # X-Request-Id: quote it to the bank's support
        self.headers = headers or {}


class ValidationError(ApiError):
    @property
    def fields(self) -> dict[str, list[str]]:
        return {field: list(messages) for field, messages in self.details.items()}


class AuthenticationError(ApiError):
    pass


class PermissionDenied(ApiError):
    pass


class NotFound(ApiError):
    pass


class ConflictError(ApiError):
    pass


class IdempotencyError(ConflictError):
    pass


class DuplicateExternalId(ConflictError):
    pass


class InvalidState(ConflictError):
    pass


class RequestRefused(ApiError):
    """A business refusal (422): nothing was reserved or sent."""


def _decimal(value: Any) -> Decimal | None:
    return Decimal(value) if value is not None else None


class InsufficientLimit(RequestRefused):
    @property
    def available(self) -> Decimal | None:
        return _decimal(self.details.get("available"))

    @property
    def requested(self) -> Decimal | None:
        return _decimal(self.details.get("requested"))

    @property
    def daily_remaining(self) -> Decimal | None:
        return _decimal(self.details.get("daily_remaining"))


class CreditLineFrozen(RequestRefused):
    pass


class CreditLineInactive(RequestRefused):
    pass


class CompanySuspended(RequestRefused):
    pass


class BusinessDayClosed(RequestRefused):
    pass


class CalendarUnavailable(RequestRefused):
    pass


class OutsideChannelHours(RequestRefused):
    pass


class RateLimited(ApiError):
    @property
    def retry_after(self) -> int:
        """Seconds to wait (the Retry-After header, else details.retry_after, else 1)."""
        value = self.headers.get("Retry-After") or self.details.get("retry_after")
        try:
            return max(1, int(value))
        except (TypeError, ValueError):
            return 1


class ServerError(ApiError):
    pass


BY_CODE: dict[str, type[ApiError]] = {
    "validation_error": ValidationError,
    "authentication_failed": AuthenticationError,
    "stale_timestamp": AuthenticationError,
    "replayed_request": AuthenticationError,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "idempotency_key_reused": IdempotencyError,
    "request_in_progress": IdempotencyError,
    "duplicate_external_id": DuplicateExternalId,
    "invalid_state": InvalidState,
    "insufficient_limit": InsufficientLimit,
    "credit_line_frozen": CreditLineFrozen,
    "credit_line_inactive": CreditLineInactive,
    "company_suspended": CompanySuspended,
    "business_day_closed": BusinessDayClosed,
    "calendar_unavailable": CalendarUnavailable,
    "outside_channel_hours": OutsideChannelHours,
    "rate_limited": RateLimited,
}
BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: ConflictError,
    422: RequestRefused,
    429: RateLimited,
}


def error_class(status: int, code: str) -> type[ApiError]:
    """The class for an answer: by its stable code, else by its status (a code newer than this client)."""
    if code in BY_CODE:
        return BY_CODE[code]
    if status >= 500:
        return ServerError
    return BY_STATUS.get(status, ApiError)
