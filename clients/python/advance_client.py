"""A small client for the advance-funding API (contract v1). Depends only on `requests`.

    from advance_client import AdvanceClient
    client = AdvanceClient("http://127.0.0.1:8000", api_key="ak_...", api_secret="sk_...")
    line = client.get("/api/v1/credit-line")
    advance = client.post("/api/v1/advances", {...})          # a fresh Idempotency-Key, reused on retries

Webhook receivers: `verify_webhook(secret, headers, raw_body)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import requests

__all__ = ["AdvanceClient", "ApiError", "sign_request", "verify_webhook"]


class ApiError(Exception):
    """An error answer of the API: `status`, `code` (stable), `message`, `details`."""

    def __init__(
        self, status: int, code: str, message: str, details: dict | None = None, replayed: bool = False
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.replayed = replayed


def sign_request(
    secret: str, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """Lowercase hex HMAC-SHA256 of METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))."""
    message = "\n".join([method.upper(), path_with_query, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    api_key: str, secret: str, method: str, path_with_query: str, raw: bytes, idempotency_key: str | None = None
) -> dict[str, str]:
    """The headers of one signed request; a new timestamp and nonce on every call (a nonce is used once)."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_urlsafe(24)
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


def verify_webhook(
    secret: str, headers: dict[str, str], raw_body: bytes, *, tolerance: int = 300, now: float | None = None
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
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ValueError("bad webhook signature")
    return json.loads(raw_body)


class AdvanceClient:
    """Signs every request; POSTs carry an Idempotency-Key that is reused on every retry of that call."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        api_secret: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        if params:
            path = f"{path}?{urlencode(params)}"
        return self.request("GET", path)

    def post(
        self, path: str, body: dict[str, Any] | None = None, *, idempotency_key: str | None = None
    ) -> Any:
        return self.request("POST", path, body, idempotency_key=idempotency_key or str(uuid.uuid4()))

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """Retries timeouts, connection errors, 5xx, 429 and request_in_progress with the same key."""
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, path, raw, idempotency_key)
            except (requests.Timeout, requests.ConnectionError):
                if attempt > self.retries:
                    raise
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            retryable = (
                response.status_code >= 500
                or response.status_code == 429
                or (response.status_code == 409 and _code(response) == "request_in_progress")
            )
            if retryable and attempt <= self.retries:
                wait = response.headers.get("Retry-After")
                time.sleep(float(wait) if wait and wait.isdigit() else self.backoff * 2 ** (attempt - 1))
                continue
            return self._result(response)

    def _send(self, method: str, path: str, raw: bytes, idempotency_key: str | None) -> requests.Response:
        # A new timestamp and nonce for each try: the server refuses a reused nonce.
        headers = signed_headers(self.api_key, self.api_secret, method, path, raw, idempotency_key)
        return self.session.request(
            method,
            self.base_url + path,
            data=raw or None,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,
        )

    @staticmethod
    def _result(response: requests.Response) -> Any:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    response.status_code, "http_error", response.text[:200], replayed=replayed
                ) from None
            raise ApiError(
                response.status_code,
                error.get("code", ""),
                error.get("message", ""),
                error.get("details"),
                replayed=replayed,
            )
        if response.headers.get("Content-Type", "").startswith("text/csv"):
            return response.text
        return response.json()


def _code(response: requests.Response) -> str:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""


if __name__ == "__main__":  # python advance_client.py BASE_URL KEY SECRET: prints the credit line
    import sys

    print(
        json.dumps(
            AdvanceClient(sys.argv[1], api_key=sys.argv[2], api_secret=sys.argv[3]).get(
                "/api/v1/credit-line"
            ),
            indent=2,
        )
    )
