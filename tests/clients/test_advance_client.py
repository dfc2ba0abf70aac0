"""The Python client: signs as the server expects; retries 5xx and timeouts with the same Idempotency-Key."""

import json
import sys
import threading
import time
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
