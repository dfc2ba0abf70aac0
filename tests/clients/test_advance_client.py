"""The Python client: signs as the server expects; retries 5xx and timeouts with the same Idempotency-Key."""

import json
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from advance_client import AdvanceClient, ApiError, sign_request, verify_webhook  # noqa: E402


class FlakyServer:
    """Answers 503 `failures` times, then 201; a request may also be made to hang past the client timeout."""

    def __init__(self, failures: int, hang_first: bool = False) -> None:
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.seen.append({**dict(self.headers), "_body": body, "_path": self.path})
                if hang_first and len(server.seen) == 1:
                    time.sleep(1.5)
                status = 503 if len(server.seen) <= failures else 201
                payload = (
                    {"error": {"code": "unavailable", "message": "try later", "details": {}}}
                    if status == 503
                    else {"id": "adv_1"}
                )
                raw = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except BrokenPipeError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("hang_first", [False, True])
def test_retries_keep_the_idempotency_key_and_change_the_nonce(hang_first):
    server = FlakyServer(failures=2, hang_first=hang_first)
    try:
        client = AdvanceClient(
            server.url, api_key="ak_test", api_secret="sk_test", timeout=0.5, retries=3, backoff=0.01
        )
        assert client.post("/api/v1/advances", {"amount": "1.00"}) == {"id": "adv_1"}
    finally:
        server.close()
    assert len(server.seen) == 3
    assert len({r["Idempotency-Key"] for r in server.seen}) == 1
    assert len({r["X-Nonce"] for r in server.seen}) == 3
    for r in server.seen:
        assert r["X-Signature"] == sign_request(
            "sk_test", "POST", r["_path"], r["X-Timestamp"], r["X-Nonce"], r["_body"]
        )


def test_gives_up_after_the_retries_with_the_error_code():
    server = FlakyServer(failures=100)
    try:
        client = AdvanceClient(server.url, api_key="ak_test", api_secret="sk_test", retries=2, backoff=0.01)
        with pytest.raises(ApiError) as error:
            client.post("/api/v1/advances", {})
    finally:
        server.close()
    assert (error.value.status, error.value.code) == (503, "unavailable")
    assert len(server.seen) == 3


def test_verify_webhook():
    import hashlib
    import hmac

    body = b'{"id":"evt_1","type":"advance.disbursed","data":{"version":3}}'
    ts = str(int(time.time()))
    sig = hmac.new(b"whsec_x", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert verify_webhook("whsec_x", {"X-Timestamp": ts, "X-Signature": sig}, body)["id"] == "evt_1"
    with pytest.raises(ValueError):
        verify_webhook("whsec_x", {"X-Timestamp": ts, "X-Signature": sig}, body + b" ")
    with pytest.raises(ValueError):
        verify_webhook("whsec_x", {"X-Timestamp": str(int(ts) - 1000), "X-Signature": sig}, body)


class ScriptedServer:
    """Answers each request with the next (status, body, headers) of a script; records what it received."""

    def __init__(self, script: list[tuple[int, object, dict]]) -> None:
        self.script = list(script)
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.seen.append({**dict(self.headers), "_body": body, "_path": self.path,
                                    "_method": self.command})
                status, payload, headers = server.script.pop(0)
                raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _error(code: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": f"{code} happened", "details": details or {}}}


@pytest.mark.parametrize(
    ("status", "code", "details", "expected"),
    [
        (400, "validation_error", {"payouts.0.amount": ["Bad."]}, "ValidationError"),
        (401, "stale_timestamp", {}, "AuthenticationError"),
        (401, "replayed_request", {}, "AuthenticationError"),
        (404, "not_found", {}, "NotFound"),
        (409, "idempotency_key_reused", {}, "IdempotencyError"),
        (409, "duplicate_external_id", {}, "DuplicateExternalId"),
        (409, "invalid_state", {}, "InvalidState"),
        (422, "insufficient_limit", {"available": "10.00", "requested": "20.00"}, "InsufficientLimit"),
        (422, "credit_line_frozen", {}, "CreditLineFrozen"),
        (422, "outside_channel_hours", {}, "OutsideChannelHours"),
        (422, "a_code_newer_than_this_client", {}, "RequestRefused"),
        (503, "unavailable", {}, "ServerError"),
    ],
)
def test_error_answers_raise_the_class_of_their_code(status, code, details, expected):
    import advance_client

    server = ScriptedServer([(status, _error(code, details), {"X-Request-Id": "req-12345678"})] * 2)
    try:
        client = AdvanceClient(server.url, api_key="ak_test", api_secret="sk_test", retries=1, backoff=0.01)
        with pytest.raises(ApiError) as raised:
            client.get("/api/v1/credit-line")
    finally:
        server.close()
    error = raised.value
    assert type(error) is getattr(advance_client, expected)
    assert (error.status, error.code, error.message, error.details) == (status, code, f"{code} happened", details)
    assert error.request_id == "req-12345678"
    if expected == "InsufficientLimit":
        assert (error.available, error.requested, error.daily_remaining) == (Decimal("10.00"), Decimal("20.00"), None)
    if expected == "ValidationError":
        assert error.fields == {"payouts.0.amount": ["Bad."]}


def test_rate_limited_waits_retry_after_then_raises_with_it():
    from advance_client import RateLimited

    limited = (429, _error("rate_limited", {"retry_after": 1}), {"Retry-After": "1"})
    server = ScriptedServer([limited, limited])
    try:
        client = AdvanceClient(server.url, api_key="ak_test", api_secret="sk_test", retries=1, backoff=0.01)
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            client.get("/api/v1/credit-line")
        waited = time.monotonic() - started
    finally:
        server.close()
    assert raised.value.retry_after == 1
    assert len(server.seen) == 2 and waited >= 1.0


def test_lists_follow_next_across_pages_and_sign_each_page_path():
    import advance_client

    server = ScriptedServer([])
    base = server.url
    server.script = [
        (200, {"results": [{"id": "adv_3"}, {"id": "adv_2"}],
               "next": f"{base}/api/v1/advances?page_size=2&cursor=c1"}, {}),
        (200, {"results": [{"id": "adv_1"}], "next": None}, {}),
    ]
    try:
        client = AdvanceClient(base, api_key="ak_test", api_secret="sk_test")
        ids = [advance["id"] for advance in client.advances.list(page_size=2)]
    finally:
        server.close()
    assert ids == ["adv_3", "adv_2", "adv_1"]
    assert [r["_path"] for r in server.seen] == [
        "/api/v1/advances?page_size=2", "/api/v1/advances?page_size=2&cursor=c1",
    ]
    for r in server.seen:
        assert r["X-Signature"] == sign_request("sk_test", "GET", r["_path"], r["X-Timestamp"], r["X-Nonce"], b"")
        assert r["User-Agent"].startswith(f"advance-client-python/{advance_client.__version__} (python 3.")


def test_resource_calls_send_the_contract_requests():
    ok = (200, {"ok": True}, {})
    server = ScriptedServer([ok] * 9 + [(200, "\ufeffid,amount\r\n", {"Content-Type": "text/csv; charset=utf-8"})])
    try:
        client = AdvanceClient(server.url, api_key="ak_test", api_secret="sk_test")
        client.credit_line()
        client.advances.create(external_id="E1", amount=Decimal("1.50"), payouts=[
            {"external_id": "P1", "beneficiary_name": "N", "account_no": "62220202", "bank_code": "ICBC",
             "amount": Decimal("1.50")}], use_own_funds=False, idempotency_key="batch-E1")
        client.advances.get("adv_X")
        client.advances.cancel("adv_X")
        client.statements.get("2026-11-25")
        client.webhook_endpoint.get()
        client.webhook_endpoint.put("https://hooks.example/engine")
        client.webhook_endpoint.test()
        client.advances.page(status="disbursed", cursor=None)
        csv_text = client.statements.csv("2026-11-25")
        with pytest.raises(TypeError, match="never float"):
            client.advances.create(external_id="E2", amount=1.5, payouts=[])
    finally:
        server.close()
    assert [(r["_method"], r["_path"]) for r in server.seen] == [
        ("GET", "/api/v1/credit-line"),
        ("POST", "/api/v1/advances"),
        ("GET", "/api/v1/advances/adv_X"),
        ("POST", "/api/v1/advances/adv_X/cancel"),
        ("GET", "/api/v1/statements/2026-11-25"),
        ("GET", "/api/v1/webhook-endpoint"),
        ("PUT", "/api/v1/webhook-endpoint"),
        ("POST", "/api/v1/webhook-endpoint/test"),
        ("GET", "/api/v1/advances?status=disbursed"),
        ("GET", "/api/v1/statements/2026-11-25?format=csv"),
    ]
    create = server.seen[1]
    assert create["Idempotency-Key"] == "batch-E1"
    assert json.loads(create["_body"]) == {
        "external_id": "E1", "currency": "CNY", "amount": "1.50", "use_own_funds": False,
        "payouts": [{"external_id": "P1", "beneficiary_name": "N", "account_no": "62220202", "bank_code": "ICBC",
                     "amount": "1.50"}],
    }
    assert len(server.seen[3]["Idempotency-Key"]) == 36 and len(server.seen[7]["Idempotency-Key"]) == 36
    assert "Idempotency-Key" not in server.seen[6]
    assert json.loads(server.seen[6]["_body"]) == {"url": "https://hooks.example/engine"}
    assert csv_text == "id,amount\r\n"  # the BOM spreadsheets want is not part of the text
