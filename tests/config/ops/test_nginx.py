"""deploy/nginx/advance-engine.conf: slow clients never reach a gunicorn sync worker; chunked API bodies get 411.

The directives are checked on every run. With an nginx binary (on PATH, or NGINX_BIN), `nginx -t` validates
the file and a live nginx in front of a live gunicorn (one sync worker) shows what it is for: slowloris
connections that stall gunicorn when they reach it directly do not stall it behind nginx.
"""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "deploy" / "nginx" / "advance-engine.conf"
LENGTH_REQUIRED = {
    "error": {
        "code": "length_required",
        "message": "Send the body with a Content-Length header; chunked transfer encoding is not accepted.",
        "details": {},
    }
}


# A small reader of nginx's syntax: directives (name + arguments) and blocks, comments and quotes handled.


def _tokens(text: str):
    for match in re.finditer(r"#[^\n]*|'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|([{};])|([^\s{};'\"#]+)", text):
        if match.group(0).startswith("#"):
            continue
        if match.group(1) is not None or match.group(2) is not None:
            yield ("word", match.group(1) if match.group(1) is not None else match.group(2))
        elif match.group(3):
            yield (match.group(3), match.group(3))
        else:
            yield ("word", match.group(4))


def parse(text: str) -> list:
    """[(name, [args], children or None)], children in the same shape."""
    stack: list[list] = [[]]
    words: list[str] = []
    for kind, value in _tokens(text):
        if kind == "word":
            words.append(value)
        elif kind == ";":
            stack[-1].append((words[0], words[1:], None))
            words = []
        elif kind == "{":
            block: list = []
            stack[-1].append((words[0], words[1:], block))
            stack.append(block)
            words = []
        else:
            assert not words, f"unterminated directive {words}"
            stack.pop()
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def directive(block: list, name: str, *args: str) -> list:
    found = [d for d in block if d[0] == name and (not args or tuple(d[1][: len(args)]) == args)]
    assert len(found) == 1, (name, args, found)
    return found[0]


def seconds(value: str) -> int:
    return int(value[:-1]) if value.endswith("s") else int(value)


@pytest.fixture(scope="module")
def conf() -> list:
    return parse(CONF.read_text())


def test_slow_clients_are_cut_off_and_only_whole_requests_reach_gunicorn(conf):
    assert seconds(directive(conf, "client_header_timeout")[1][0]) <= 15
    assert seconds(directive(conf, "client_body_timeout")[1][0]) <= 15
    assert seconds(directive(conf, "send_timeout")[1][0]) <= 30
    tls = [d for d in conf if d[0] == "server" and any(x[0] == "ssl_certificate" for x in d[2])]
    assert len(tls) == 1
    server = tls[0][2]
    assert directive(server, "proxy_request_buffering")[1] == ["on"]
    assert directive(server, "proxy_buffering")[1] == ["on"]
    assert directive(server, "limit_conn")[1][0] == "advance_engine_per_address"
    assert seconds(directive(server, "proxy_read_timeout")[1][0]) > int(os.environ.get("GUNICORN_TIMEOUT", "30"))
    assert directive(server, "proxy_set_header", "X-Forwarded-For")[1] == [
        "X-Forwarded-For", "$proxy_add_x_forwarded_for"
    ]
    upstream = directive(conf, "upstream", "advance_engine")[2]
    assert directive(upstream, "server")[1][0] == "127.0.0.1:8000"
    # Bigger than the engine's own limit, so an oversized API body still gets the contract's 400.
    assert int(directive(conf, "client_max_body_size")[1][0].rstrip("m")) * 1024 * 1024 > (
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )


def test_chunked_api_bodies_get_the_contract_s_411_and_metrics_stay_inside(conf):
    server = next(d[2] for d in conf if d[0] == "server" and any(x[0] == "ssl_certificate" for x in d[2]))
    api = directive(server, "location", "/api/")[2]
    condition = directive(api, "if")
    assert condition[1] == ["($http_transfer_encoding", "!=", ")"] or condition[1][0].startswith(
        "($http_transfer_encoding"
    )
    status, body = directive(condition[2], "return")[1]
    assert status == "411" and json.loads(body) == LENGTH_REQUIRED
    assert directive(api, "default_type")[1] == ["application/json"]
    assert directive(directive(server, "location", "=", "/metrics")[2], "return")[1] == ["404"]


# Live: needs an nginx binary ------------------------------------------------------------------------------

NGINX = os.environ.get("NGINX_BIN") or shutil.which("nginx")
needs_nginx = pytest.mark.skipif(not NGINX, reason="no nginx binary (set NGINX_BIN or put nginx on PATH)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )
    (directory / "advance-engine.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "advance-engine.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )


class Nginx:
    """The deploy file, unchanged but for its ports, certificate directory and upstream, in a private prefix."""

    def __init__(self, tmp_path: Path, upstream_port: int):
        tls = tmp_path / "tls"
        tls.mkdir()
        _self_signed(tls)
        self.http_port, self.https_port = _free_port(), _free_port()
        site = CONF.read_text()
        site = site.replace("/etc/nginx/tls/", f"{tls}/")
        site = site.replace("server 127.0.0.1:8000", f"server 127.0.0.1:{upstream_port}")
        site = re.sub(r"listen 80;", f"listen 127.0.0.1:{self.http_port};", site)
        site = re.sub(r"listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;", site)
        (tmp_path / "site.conf").write_text(site)
        temp = tmp_path / "temp"
        temp.mkdir()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (tmp_path / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log off;\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  include {tmp_path}/site.conf;\n"
            "}\n"
        )
        self.argv = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "e.log")]
        self.proc: subprocess.Popen | None = None

    def test(self) -> subprocess.CompletedProcess:
        return subprocess.run([*self.argv, "-t"], capture_output=True, text=True, timeout=30)

    def start(self) -> None:
        self.proc = subprocess.Popen([*self.argv, "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("nginx did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@needs_nginx
def test_nginx_accepts_the_file(tmp_path):
    result = Nginx(tmp_path, 8000).test()
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


_CLIENT_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_CLIENT_TLS.check_hostname = False
_CLIENT_TLS.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate


def _tls_socket(port: int) -> ssl.SSLSocket:
    return _CLIENT_TLS.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))


def _slowloris(connect, stop: threading.Event, opened: list) -> None:
    """Opens a connection and sends a request's headers one byte every 0.3 s, never finishing them."""
    try:
        sock = connect()
    except OSError as exc:
        opened.append(exc)
        return
    opened.append(sock)
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 10_000
    for byte in request:
        if stop.wait(0.3):
            break
        try:
            sock.send(bytes([byte]))
        except OSError:
            break


def _read_response(sock) -> tuple[int, bytes, str]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read(), response.getheader("Content-Type", "")


def _get(connect, path: str = "/healthz", host: str = "localhost") -> tuple[int, bytes]:
    sock = connect()
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status, body, _ = _read_response(sock)
    finally:
        sock.close()
    return status, body


def _get_within(connect, seconds: float) -> int | None:
    """The status of a normal request, or None if it got no answer within `seconds`."""
    result: list = []

    def run():
        try:
            result.append(_get(connect)[0])
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


@pytest.fixture
def one_sync_worker():
    from tests.proof.conftest import Gunicorn, engine_env

    server = Gunicorn(engine_env(settings.CELERY_BROKER_URL, LOG_LEVEL="ERROR"), workers=1, timeout=30)
    yield server
    server.stop()


@needs_nginx
@pytest.mark.slow
def test_slowloris_stalls_a_bare_sync_worker_but_not_the_worker_behind_nginx(tmp_path, one_sync_worker):
    nginx = Nginx(tmp_path, one_sync_worker.port)
    nginx.start()
    stop = threading.Event()
    opened: list = []
    try:
        # Directly: one slow connection holds the only worker; a normal request gets no answer meanwhile.
        direct = lambda: socket.create_connection(("127.0.0.1", one_sync_worker.port), timeout=30)  # noqa: E731
        slow = threading.Thread(target=_slowloris, args=(direct, stop, opened), daemon=True)
        slow.start()
        time.sleep(1.0)
        assert _get_within(direct, 4) is None
        stop.set()
        for sock in opened:
            if isinstance(sock, socket.socket):
                sock.close()
        slow.join(5)
        assert _get_within(direct, 10) == 200  # and it recovers once the slow client is gone

        # Behind nginx: twenty slow connections, and normal requests are answered at once, again and again.
        stop.clear()
        opened.clear()
        through = lambda: _tls_socket(nginx.https_port)  # noqa: E731
        slow = [threading.Thread(target=_slowloris, args=(through, stop, opened), daemon=True) for _ in range(20)]
        for thread in slow:
            thread.start()
        deadline = time.monotonic() + 15
        while len(opened) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert len(opened) == 20 and all(isinstance(sock, socket.socket) for sock in opened), opened
        started = time.monotonic()
        assert [_get_within(through, 4) for _ in range(5)] == [200] * 5
        assert time.monotonic() - started < 4
    finally:
        stop.set()
        for sock in opened:
            if isinstance(sock, socket.socket):
                sock.close()
        nginx.stop()


def _chunked_post(connect, path: str = "/api/v1/advances") -> tuple[int, bytes, str]:
    sock = connect()
    try:
        body = b'{"external_id": "X"}'
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
            + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        )
        return _read_response(sock)
    finally:
        sock.close()


@needs_nginx
@pytest.mark.slow
def test_a_chunked_api_body_gets_411_through_nginx(tmp_path, one_sync_worker):
    nginx = Nginx(tmp_path, one_sync_worker.port)
    nginx.start()
    try:
        status, body, content_type = _chunked_post(lambda: _tls_socket(nginx.https_port))
        assert (status, json.loads(body), content_type) == (411, LENGTH_REQUIRED, "application/json")
        # /metrics is not reachable through nginx (every caller would look like loopback to the engine).
        assert _get(lambda: _tls_socket(nginx.https_port), "/metrics")[0] == 404
    finally:
        nginx.stop()


@pytest.mark.slow
def test_a_chunked_api_body_gets_411_from_gunicorn_itself(one_sync_worker):
    """Without nginx in front, the engine answers it (funding.api.middleware), never a 5xx or a hang."""
    connect = lambda: socket.create_connection(("127.0.0.1", one_sync_worker.port), timeout=10)  # noqa: E731
    status, body, content_type = _chunked_post(connect)
    assert (status, json.loads(body), content_type) == (411, LENGTH_REQUIRED, "application/json")
    status, body, _ = _chunked_post(connect, "/api/v1/webhook-endpoint")
    assert status == 411
    assert _get(connect)[0] == 200  # the worker is free again
