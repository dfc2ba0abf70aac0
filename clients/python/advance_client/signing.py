"""Request signing and webhook verification (contract 1.1 and 1.6). Standard library only."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any


def string_to_sign(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body)), no trailing newline."""
    return "\n".join([method.upper(), path_with_query, timestamp, nonce, hashlib.sha256(body).hexdigest()])


def sign_request(secret: str, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256, keyed with the API secret, of string_to_sign(...)."""
    message = string_to_sign(method, path_with_query, timestamp, nonce, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    api_key: str,
    secret: str,
    method: str,
    path_with_query: str,
    raw: bytes,
    idempotency_key: str | None = None,
    *,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of one signed request; a new timestamp and nonce on every call (a nonce is used once).
    `timestamp` and `nonce` are for test vectors only."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or secrets.token_urlsafe(24)
    headers = {
        "X-Api-Key": api_key,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": sign_request(secret, method, path_with_query, timestamp, nonce, raw),
        "Accept": "application/json",
    }
    if raw:
        headers["Content-Type"] = "application/json; charset=utf-8"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def webhook_signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    """Lowercase hex HMAC-SHA256, keyed with the webhook secret, of TIMESTAMP + "." + raw body."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()


def verify_webhook(
    secret: str, headers: Mapping[str, str], raw_body: bytes, *, tolerance: int = 300, now: float | None = None
) -> dict[str, Any]:
    """Check X-Signature = HMAC-SHA256(secret, X-Timestamp + "." + raw body) and the timestamp's age.

    Returns the parsed event; raises ValueError if the signature or the timestamp is wrong. Deduplicate on
    the event `id` and drop events whose `data.version` is older than what you have.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-timestamp", "")
    signature = lower.get("x-signature", "")
    if not timestamp.isdigit() or not signature:
        raise ValueError("missing X-Timestamp or X-Signature")
    if abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        raise ValueError("stale webhook timestamp")
    if not hmac.compare_digest(webhook_signature(secret, timestamp, raw_body), signature):
        raise ValueError("bad webhook signature")
    return json.loads(raw_body)
