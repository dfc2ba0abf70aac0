"""config.ops.client_ip: X-Forwarded-For is read from the right, and believed only through trusted proxies."""

import pytest
from django.test import RequestFactory

from config.ops.client_ip import client_ip


def request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        # No trusted proxy in front: the header is the client's to forge and is ignored.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # Through the load balancer: its entry names the client.
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # The client forged entries on the left: only the entry the trusted proxy appended counts.
        ("10.0.0.2", "1.1.1.1, 8.8.8.8, 198.51.100.1", "198.51.100.1"),
        # Two trusted hops (nginx 10.0.0.3 behind the load balancer 10.0.0.2), then the client.
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", "198.51.100.1"),
        # An untrusted hop in the middle: everything left of it is not believed.
        ("10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        # Ports and IPv6 forms proxies write.
        ("10.0.0.2", "198.51.100.1:51234", "198.51.100.1"),
        ("10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.2", "2001:db8::7", "2001:db8::7"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # Garbage a trusted proxy would not write: the last address a proxy vouched for.
        ("10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1, nonsense, 10.0.0.3", "10.0.0.3"),
        # Only trusted hops (a health check from the proxy itself): the leftmost.
        ("10.0.0.2", "10.0.0.3", "10.0.0.3"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
    ],
)
def test_client_ip(settings, remote, forwarded, client):
    settings.TRUSTED_PROXIES = ["10.0.0.2", "10.0.0.3/32"]
    assert client_ip(request(remote, forwarded)) == client


def test_without_trusted_proxies_remote_addr_is_the_client(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request("10.0.0.2", "198.51.100.1")) == "10.0.0.2"
    assert client_ip(request("")) is None
    assert client_ip(None) is None


def test_a_trusted_network(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("10.9.8.7", "203.0.113.5, 10.1.1.1")) == "203.0.113.5"


def test_an_invalid_trusted_proxy_is_refused_at_start():
    from tests.config.ops.test_settings import load_settings

    result = load_settings(TRUSTED_PROXIES="10.0.0.2,proxy.example")
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.example' is not an address or network" in result.stderr
    assert load_settings(TRUSTED_PROXIES="10.0.0.2, 10.1.0.0/16,::1").returncode == 0
