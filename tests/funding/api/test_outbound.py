"""funding.api.outbound: public addresses only (IPv4 embeddings included) and no DNS rebinding."""

import ipaddress
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from funding.api import outbound
from funding.api.models import WebhookDeliveryAttempt
from funding.api.services import webhook_endpoint_set
from funding.api.webhooks import webhook_deliver
from funding.models import WebhookEvent
from tests.funding.api.conftest import error_of


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("1.1.1.1", False),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),  # noqa: S104 - an address under test, nothing binds to it
        ("224.0.0.1", True),
        ("255.255.255.255", True),
        ("192.0.2.1", True),  # documentation
        ("2001:4860:4860::8888", False),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("2001:db8::1", True),
        # IPv4-mapped and IPv4-compatible: judged by the IPv4 address inside.
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("::ffff:8.8.8.8", False),
        ("::127.0.0.1", True),
        ("::10.0.0.1", True),
        ("::8.8.8.8", False),
        # NAT64: the translator would connect to the IPv4 address in the last 32 bits.
        ("64:ff9b::7f00:1", True),
        ("64:ff9b::a00:1", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("64:ff9b::808:808", False),
        ("64:ff9b:1::808:808", True),  # local-use NAT64 prefix: never
        # 6to4: 2002:AABB:CCDD:: carries AA.BB.CC.DD.
        ("2002:7f00:1::1", True),
        ("2002:c0a8:101::1", True),
        ("2002:a9fe:a9fe::1", True),
        # Teredo: server and (obfuscated) client address.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # client 192.0.2.45 (documentation)
        ("2001:0:7f00:1:8000:63bf:f5ff:fffe", True),  # server 127.0.0.1
    ],
)
def test_address_refusal(address, refused):
    reason = outbound.address_refusal(ipaddress.ip_address(address))
    assert (reason is not None) == refused, reason


def test_embedded_ipv4_of_each_mechanism():
    def inner(text):
        return [str(a) for a in outbound.embedded_ipv4(ipaddress.IPv6Address(text))]

    assert inner("::ffff:10.0.0.1") == ["10.0.0.1"]
    assert inner("::10.0.0.1") == ["10.0.0.1"]
    assert inner("64:ff9b::7f00:1") == ["127.0.0.1"]
    assert inner("2002:c0a8:101::1") == ["192.168.1.1"]
    assert inner("2001:0:4136:e378:8000:63bf:3fff:fdd2") == ["65.54.227.120", "192.0.2.45"]
    assert inner("2001:4860:4860::8888") == []
    assert inner("::1") == []


class FakeDns:
    """getaddrinfo for *.test names: answers from a script, one answer per lookup (the last one repeats)."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if isinstance(host, str) and host.endswith(".test"):
                self.lookups.append(host)
                script = self.answers[host]
                addresses = script[min(len([h for h in self.lookups if h == host]), len(script)) - 1]
                return [
                    (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port, 0, 0) if ":" in a else (a, port))
                    for a in addresses
                ]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "answer", [["127.0.0.1"], ["8.8.8.8", "10.0.0.5"], ["64:ff9b::a9fe:a9fe"], ["::ffff:192.168.0.1"]]
)
def test_a_name_resolving_to_any_non_public_address_is_refused(monkeypatch, settings, answer):
    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    FakeDns(monkeypatch, {"hooks.test": [answer]})
    with pytest.raises(outbound.Refused, match="private, loopback or link-local"):
        outbound.resolve("https://hooks.test/x")


def test_registration_refuses_a_name_that_resolves_inside(api, monkeypatch, settings):
    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    FakeDns(monkeypatch, {"inside.test": [["2002:a00:1::1"]], "outside.test": [["8.8.8.8"]]})
    refused = api.put("/api/v1/webhook-endpoint", {"url": "https://inside.test/hooks"})
    assert refused.status_code == 400 and list(error_of(refused)["details"]) == ["url"]
    assert "2002:a00:1::1 leads to a non-public IPv4 address" in error_of(refused)["details"]["url"][0]
    assert api.put("/api/v1/webhook-endpoint", {"url": "https://outside.test/hooks"}).status_code == 200


class Receiver:
    """HTTP(S) server on 127.0.0.1 recording each request's Host header (and the TLS SNI name)."""

    def __init__(self, tls_context: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            tls_context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def event(company_line):
    from funding.services.credit_lines import credit_line_freeze
    from tests.factories import staff_user

    company, line = company_line
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="test")
    return WebhookEvent.objects.get(company=company, type="credit_line.frozen")


@pytest.mark.django_db
def test_delivery_connects_to_the_address_it_checked_even_if_the_name_moves(event, company_line, monkeypatch):
    """The name is looked up once per attempt; a second answer (the rebinding) is never asked for."""
    with Receiver() as receiver:
        dns = FakeDns(monkeypatch, {"hooks.test": [["127.0.0.1"], ["192.0.2.1"]]})
        webhook_endpoint_set(company=company_line[0], url=f"http://hooks.test:{receiver.port}/x",
                             actor_label="test")
        delivered = webhook_deliver(event_id=event.id)
    assert delivered.status == "delivered"
    assert dns.lookups == ["hooks.test"]
    assert [r["Host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"]


@pytest.mark.django_db
def test_a_rebinding_name_cannot_turn_a_checked_public_address_into_loopback(
    event, company_line, monkeypatch, settings
):
    """Production rules: the check sees 8.8.8.8; the rebinding answer 127.0.0.1 never gets a connection."""
    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    connected: list[tuple] = []

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError("test: no network")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    monkeypatch.setattr(urllib3.connection.connection, "create_connection", create_connection)
    with Receiver() as loopback:
        # Registration and the attempt's own check see 8.8.8.8; any lookup after that would get loopback.
        dns = FakeDns(monkeypatch, {"rebind.test": [["8.8.8.8"], ["8.8.8.8"], ["127.0.0.1"]]})
        webhook_endpoint_set(company=company_line[0], url=f"https://rebind.test:{loopback.port}/x",
                             actor_label="test")
        assert dns.lookups == ["rebind.test"]  # the registration's own check
        webhook_deliver(event_id=event.id)
    assert dns.lookups == ["rebind.test", "rebind.test"]  # one more: the attempt's check, then never again
    assert connected == [("8.8.8.8", loopback.port)]
    assert loopback.requests == []
    attempt = WebhookDeliveryAttempt.objects.get(event=event)
    assert attempt.status_code is None and "NewConnectionError" in attempt.error


def _ca_and_leaf(tmp_path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return ca_file, server


@pytest.mark.django_db
def test_https_goes_to_the_checked_address_with_sni_and_a_certificate_checked_for_the_name(
    event, company_line, monkeypatch, settings, tmp_path
):
    ca_file, server_tls = _ca_and_leaf(tmp_path, "hooks.test")
    settings.WEBHOOK_CA_BUNDLE = str(ca_file)
    with Receiver(server_tls) as receiver:
        FakeDns(monkeypatch, {"hooks.test": [["127.0.0.1"], ["192.0.2.1"]], "other.test": [["127.0.0.1"]]})
        webhook_endpoint_set(company=company_line[0], url=f"https://hooks.test:{receiver.port}/x",
                             actor_label="test")
        assert webhook_deliver(event_id=event.id).status == "delivered"
        assert receiver.sni == ["hooks.test"]
        assert [r["Host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"]

        # The same server under a name its certificate does not carry: refused by the TLS check.
        webhook_endpoint_set(company=company_line[0], url=f"https://other.test:{receiver.port}/x",
                             actor_label="test")
        WebhookEvent.objects.filter(pk=event.pk).update(status="pending", next_attempt_at=datetime.now(UTC))
        failed = webhook_deliver(event_id=event.id)
    assert failed.status == "pending"
    assert len(receiver.requests) == 1
    last = WebhookDeliveryAttempt.objects.filter(event=event).order_by("-number").first()
    assert last.status_code is None and "certificate" in last.error.lower()
