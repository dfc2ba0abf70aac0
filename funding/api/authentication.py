"""Signed requests (contract 1.1): HMAC-SHA256 over method, path+query, timestamp, nonce and body hash."""

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from funding.api.errors import WWW_AUTHENTICATE, ApiError
from funding.api.idempotency import PENDING_NONCE_ATTR
from funding.api.keys import (
    api_key_active,
    api_key_for,
    api_key_plain_secret,
    authentication_failed,
    nonce_record,
    pending_nonce_for,
)
from funding.api.models import ApiKey
from funding.api.services import api_key_touch
from funding.models import Company

__all__ = ["ApiClient", "SignatureAuthentication", "api_key_active", "sign", "string_to_sign"]

KEY_ID_RE = re.compile(r"^ak_[A-Za-z0-9]{8,36}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class ApiClient:
    """request.user for API calls: the company behind a valid key."""

    company: Company
    api_key: ApiKey
    is_authenticated: bool = True

    @property
    def label(self) -> str:
        return f"api:{self.api_key.key_id}"


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()])


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class SignatureAuthentication(BaseAuthentication):
    """Deny by default: a request without a valid signature never reaches a view."""

    def authenticate(self, request):
        meta = request._request.META
        key_id = meta.get("HTTP_X_API_KEY", "")
        timestamp = meta.get("HTTP_X_TIMESTAMP", "")
        nonce = meta.get("HTTP_X_NONCE", "")
        signature = meta.get("HTTP_X_SIGNATURE", "")
        if not (key_id and timestamp and nonce and signature):
            raise authentication_failed("The X-Api-Key, X-Timestamp, X-Nonce and X-Signature headers are required.")
        if (
            not KEY_ID_RE.fullmatch(key_id)
            or not TIMESTAMP_RE.fullmatch(timestamp)
            or not NONCE_RE.fullmatch(nonce)
        ):
            raise authentication_failed()
        api_key = api_key_for(key_id=key_id)
        if api_key is None:
            raise authentication_failed()
        try:
            body = request._request.body
        except RequestDataTooBig as exc:
            raise ApiError(
                400,
                "validation_error",
                "The request body is too large.",
                {"body": ["The body is too large."]},
            ) from exc
        signed = (request._request.method, request._request.get_full_path(), timestamp, nonce, body)

        def verifies(key: ApiKey | None) -> bool:
            expected = sign(api_key_plain_secret(key), *signed) if key is not None else ""
            return hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))

        if not verifies(api_key):
            # This process's copy of the row may hold a secret since replaced: read the row before refusing.
            api_key = api_key_for(key_id=key_id, fresh=True)
            if not verifies(api_key):
                raise authentication_failed()
        if abs(time.time() - int(timestamp)) > settings.API_SIGNATURE_MAX_SKEW_SECONDS:
            raise ApiError(
                401, "stale_timestamp", "X-Timestamp is more than 300 seconds from the server's time."
            )
        # Only after the signature checks out: otherwise anyone could burn a client's nonces. A write to a view
        # that claims idempotency keys records it with the claim (one statement and one COMMIT less). Either
        # statement also checks that the key row is still the one that verified the signature (funding.api.keys).
        pending = pending_nonce_for(api_key, nonce)
        view = (request.parser_context or {}).get("view")
        if request._request.method == "POST" and getattr(view, "nonce_with_idempotency_claim", False):
            setattr(request._request, PENDING_NONCE_ATTR, pending)
        else:
            recorded, renewed = nonce_record(pending)
            if not recorded:
                raise ApiError(401, "replayed_request", "This nonce was already used with this key.")
            api_key = renewed or api_key  # the row as read again, if it had changed (a suspension...)
        # Skip the (conditional) UPDATE's round trip while the last use noted is under a minute old.
        if api_key.last_used_at is None or time.time() - api_key.last_used_at.timestamp() >= 60:
            api_key_touch(api_key=api_key)
            api_key.last_used_at = timezone.now()  # this process's copy: touch again in a minute, not every request
        return ApiClient(company=api_key.company, api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE
