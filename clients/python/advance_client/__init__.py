"""Python client for the advance-funding API (contract v1 with the 1.1 additions). Depends only on `requests`.

    from advance_client import AdvanceClient, InsufficientLimit

    client = AdvanceClient("https://engine.bank.example", api_key="ak_...", api_secret="sk_...")
    line = client.credit_line()
    advance = client.advances.create(external_id="SETTLE-1", amount="150000.00", payouts=[...])
    for advance in client.advances.list(status="disbursed"):      # every page, following `next`
        ...

Webhook receivers: `verify_webhook(secret, headers, raw_body)`.
"""

from advance_client._version import __version__
from advance_client.client import USER_AGENT, AdvanceClient
from advance_client.errors import (
    ApiError,
    AuthenticationError,
    BusinessDayClosed,
    CalendarUnavailable,
    CompanySuspended,
    ConflictError,
    CreditLineFrozen,
    CreditLineInactive,
    DuplicateExternalId,
    IdempotencyError,
    InsufficientLimit,
    InvalidState,
    NotFound,
    OutsideChannelHours,
    PermissionDenied,
    RateLimited,
    RequestRefused,
    ServerError,
    ValidationError,
)
from advance_client.signing import sign_request, signed_headers, string_to_sign, verify_webhook, webhook_signature

__all__ = [
    "USER_AGENT",
    "AdvanceClient",
    "ApiError",
    "AuthenticationError",
    "BusinessDayClosed",
    "CalendarUnavailable",
    "CompanySuspended",
    "ConflictError",
    "CreditLineFrozen",
    "CreditLineInactive",
    "DuplicateExternalId",
    "IdempotencyError",
    "InsufficientLimit",
    "InvalidState",
    "NotFound",
    "OutsideChannelHours",
    "PermissionDenied",
    "RateLimited",
    "RequestRefused",
    "ServerError",
    "ValidationError",
    "__version__",
    "sign_request",
    "signed_headers",
    "string_to_sign",
    "verify_webhook",
    "webhook_signature",
]
