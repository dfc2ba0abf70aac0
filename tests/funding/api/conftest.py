import hashlib
import hmac
import json
import secrets
import time

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from funding.api.services import api_key_issue
from tests.factories import company_with_line


def signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Written out independently of funding.api.authentication: the contract's recipe, step by step."""
    string = "\n".join([method, path, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), string.encode(), hashlib.sha256).hexdigest()


class SignedClient:
    """Django's test client plus the four signature headers; every knob can be overridden to break it."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret
        self.client = Client()

    def call(
        self,
        method: str,
        path: str,
        body=None,
        *,
        raw: bytes | None = None,
        idem: str | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
        sign_secret: str | None = None,
        sign_body: bytes | None = None,
        sign_path: str | None = None,
        headers: dict | None = None,
        omit: tuple = (),
    ):
        if raw is None:
            raw = b"" if body is None else json.dumps(body).encode()
        timestamp = timestamp if timestamp is not None else str(int(time.time()))
        nonce = nonce or secrets.token_hex(16)
        sig = signature(
            sign_secret or self.secret,
            method,
            sign_path or path,
            timestamp,
            nonce,
            raw if sign_body is None else sign_body,
        )
        all_headers = {
            "X-Api-Key": self.key_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sig,
        }
        if idem is not None:
            all_headers["Idempotency-Key"] = idem
        all_headers.update(headers or {})
        for name in omit:
            all_headers.pop(name, None)
        return self.client.generic(
            method, path, data=raw, content_type="application/json", headers=all_headers
        )

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body=None, *, idem: str | None = "auto", **kw):
        if idem == "auto":
            idem = secrets.token_hex(8)
        return self.call("POST", path, body, idem=idem, **kw)

    def put(self, path: str, body=None, **kw):
        return self.call("PUT", path, body, **kw)


def signed_client_for(company) -> SignedClient:
    issued = api_key_issue(company=company, actor_label="test")
    return SignedClient(issued.key_id, issued.secret)


@pytest.fixture
def company_line(business_day):
    return company_with_line(limit="1000000.00")


@pytest.fixture
def api(company_line) -> SignedClient:
    return signed_client_for(company_line[0])


def advance_body(amounts=("100000.00", "50000.00"), external_id="SETTLE-20261125-0001", **overrides) -> dict:
    from decimal import Decimal

    body = {
        "external_id": external_id,
        "currency": "CNY",
        "amount": f"{sum(Decimal(a) for a in amounts):.2f}",
        "use_own_funds": True,
        "payouts": [
            {
                "external_id": f"M{i}-20261125",
                "beneficiary_name": "Shanghai Example Trading Co.",
                "account_no": "6222020200112233445",
                "bank_code": "ICBC",
                "amount": a,
            }
            for i, a in enumerate(amounts, start=1)
        ],
    }
    body.update(overrides)
    return body


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def advances_requested(outcome: str | None = None, reason: str | None = None) -> float:
    """engine_advances_requested_total, of one outcome and reason ("none" when accepted) or, unnamed, of all."""
    return sum(
        sample.value
        for metric in REGISTRY.collect() if metric.name == "engine_advances_requested"
        for sample in metric.samples
        if sample.name == "engine_advances_requested_total"
        and outcome in (None, sample.labels.get("outcome")) and reason in (None, sample.labels.get("reason"))
    )
