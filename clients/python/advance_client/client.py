"""AdvanceClient: signed requests, idempotent retries, resources, auto-pagination, typed errors."""

from __future__ import annotations

import json
import platform
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from advance_client._version import __version__
from advance_client.errors import ApiError, error_class
from advance_client.signing import signed_headers

USER_AGENT = (
    f"advance-client-python/{__version__} (python {platform.python_version()}; requests {requests.__version__})"
)


def _query(params: dict[str, Any]) -> str:
    clean = {key: _text(value) for key, value in params.items() if value is not None}
    return f"?{urlencode(clean)}" if clean else ""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _amount(value: str | Decimal | int) -> str:
    """Amounts travel as strings (contract 1.3); a float would lose cents, so it is refused here."""
    if isinstance(value, float):
        raise TypeError("amounts must be str or Decimal, never float")
    return str(value)


class _Resource:
    def __init__(self, client: AdvanceClient) -> None:
        self._client = client


class Advances(_Resource):
    def create(
        self,
        *,
        external_id: str,
        amount: str | Decimal,
        payouts: list[dict[str, Any]],
        currency: str = "CNY",
        use_own_funds: bool = True,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/v1/advances. Pass your own idempotency_key to make a retry after a crash of *your*
        process safe too (persist it with your batch); otherwise one is made and reused on this call's retries."""
        body = {
            "external_id": external_id,
            "currency": currency,
            "amount": _amount(amount),
            "use_own_funds": use_own_funds,
            "payouts": [{**payout, "amount": _amount(payout["amount"])} for payout in payouts],
        }
        return self._client.post("/api/v1/advances", body, idempotency_key=idempotency_key)

    def get(self, advance_id: str) -> dict[str, Any]:
        return self._client.get(f"/api/v1/advances/{advance_id}")

    def list(self, *, page_size: int | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every advance matching the filters (status, business_date, external_id, created_after,
        created_before), newest first, fetching the following pages as the iteration reaches them."""
        return self._client.paginate("/api/v1/advances", {**filters, "page_size": page_size})

    def page(self, *, page_size: int | None = None, cursor: str | None = None, **filters: Any) -> dict[str, Any]:
        """One page as the API answers it: {"results": [...], "next": url or None}."""
        return self._client.get("/api/v1/advances", {**filters, "page_size": page_size, "cursor": cursor})

    def cancel(self, advance_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self._client.post(f"/api/v1/advances/{advance_id}/cancel", None, idempotency_key=idempotency_key)


class Repayments(_Resource):
    def list(self, *, business_date: Any = None) -> Iterator[dict[str, Any]]:
        return self._client.paginate("/api/v1/repayments", {"business_date": business_date})


class Statements(_Resource):
    def get(self, business_date: Any) -> dict[str, Any]:
        return self._client.get(f"/api/v1/statements/{_text(business_date)}")

    def csv(self, business_date: Any) -> str:
        return self._client.get(f"/api/v1/statements/{_text(business_date)}", {"format": "csv"})


class WebhookEndpoint(_Resource):
    def get(self) -> dict[str, Any]:
        return self._client.get("/api/v1/webhook-endpoint")

    def put(self, url: str) -> dict[str, Any]:
        """Register or replace the URL; the answer holds a fresh signing `secret`, shown only this once."""
        return self._client.put("/api/v1/webhook-endpoint", {"url": url})

    def test(self) -> dict[str, Any]:
        """Have the bank send a signed `ping` event to the registered URL now (contract 1.7)."""
        return self._client.post("/api/v1/webhook-endpoint/test", None)


class Events(_Resource):
    def list(
        self, *, after: str | None = None, type: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The company's events in the order they were written, each exactly as its webhook body; `after` an
        event id to catch up from (contract 1.7)."""
        return self._client.paginate("/api/v1/events", {"after": after, "type": type, "page_size": page_size})


class AdvanceClient:
    """Signs every request; POSTs carry an Idempotency-Key that is reused on every retry of that call.

    Retries timeouts, connection errors, 5xx, 429 (after Retry-After) and 409 request_in_progress, `retries`
    times with exponential back-off. Error answers raise the typed errors of advance_client.errors.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        api_secret: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_wait: float = 30.0,
        session: requests.Session | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.session = session or requests.Session()
        self.user_agent = f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT
        self.advances = Advances(self)
        self.repayments = Repayments(self)
        self.statements = Statements(self)
        self.webhook_endpoint = WebhookEndpoint(self)
        self.events = Events(self)

    # Resources -------------------------------------------------------------------------------------------
    def credit_line(self) -> dict[str, Any]:
        return self.get("/api/v1/credit-line")

    # Plain calls -----------------------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path + _query(params or {}))

    def post(self, path: str, body: dict[str, Any] | None = None, *, idempotency_key: str | None = None) -> Any:
        return self.request("POST", path, body, idempotency_key=idempotency_key or str(uuid.uuid4()))

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield the items of every page, following each page's `next` until it is null."""
        page = self.get(path, params)
        while True:
            yield from page.get("results", [])
            next_url = page.get("next")
            if not next_url:
                return
            page = self.request("GET", self._path_of(next_url))

    def _path_of(self, url: str) -> str:
        """The path and query to request (and sign) for a `next` URL, on this client's base URL."""
        if url.startswith(self.base_url + "/"):
            return url[len(self.base_url):]
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, path, raw, idempotency_key)
            except (requests.Timeout, requests.ConnectionError):
                if attempt > self.retries:
                    raise
                time.sleep(self._backoff(attempt))
                continue
            retryable = (
                response.status_code >= 500
                or response.status_code == 429
                or (response.status_code == 409 and _code(response) == "request_in_progress")
            )
            if retryable and attempt <= self.retries:
                wait = response.headers.get("Retry-After")
                delay = float(wait) if wait and wait.isdigit() else self._backoff(attempt)
                time.sleep(min(delay, self.max_retry_wait))
                continue
            return self._result(response)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.max_retry_wait)

    def _send(self, method: str, path: str, raw: bytes, idempotency_key: str | None) -> requests.Response:
        # A new timestamp and nonce for each try: the server refuses a reused nonce.
        headers = signed_headers(self.api_key, self.api_secret, method, path, raw, idempotency_key)
        headers["User-Agent"] = self.user_agent
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
            headers = dict(response.headers)
            request_id = response.headers.get("X-Request-Id")
            try:
                error = response.json()["error"]
                code, message, details = error.get("code", ""), error.get("message", ""), error.get("details")
            except (ValueError, KeyError, TypeError, AttributeError):
                code, message, details = "http_error", response.text[:200], None
            cls = error_class(response.status_code, code)
            raise cls(response.status_code, code, message, details, replayed=replayed, request_id=request_id,
                      headers=headers)
        if response.headers.get("Content-Type", "").startswith("text/csv"):
            return response.content.decode("utf-8-sig")
        return response.json()


def _code(response: requests.Response) -> str:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""


__all__ = ["AdvanceClient", "ApiError", "USER_AGENT"]
