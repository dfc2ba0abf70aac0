"""Outbound HTTP to payment companies' webhook URLs: to the address that was checked, and only a public one.

SSRF protection has two halves, and both are here:
- the address check (`address_refusal`): a webhook URL must resolve to public unicast addresses only. IPv6
  forms that carry an IPv4 address inside (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64
  64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32) are judged by the IPv4 address they lead to, so
  64:ff9b::7f00:1 or 2002:c0a8:0101:: cannot reach loopback or the bank's private network through a
  translator; the local-use NAT64 prefix 64:ff9b:1::/48 is refused outright.
- no DNS rebinding (`resolve` then `post`): the host name is resolved once, every address is checked, and
  the connection goes to a checked address itself; the name is never looked up again. TLS still verifies the
  certificate against the host name (sent as SNI), and the request carries the original Host header.
Redirects are never followed and no proxy from the environment is used: either would connect elsewhere.
"""

import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class Refused(Exception):
    """The URL may not be called; the message says why, for the API's validation error and the attempt log."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to through a translation or tunnelling mechanism."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [server, client]
    if address in NAT64_WELL_KNOWN or (address in IPV4_COMPATIBLE and int(address) > 1):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def _public_ipv4(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def address_refusal(address: IPAddress) -> str | None:
    """Why a webhook may not be sent to this address, or None if it may."""
    if isinstance(address, ipaddress.IPv4Address):
        return None if _public_ipv4(address) else f"{address} is not a public address"
    if address in NAT64_LOCAL_USE:
        return f"{address} is a local-use NAT64 address"
    inner = embedded_ipv4(address)
    if any(not _public_ipv4(v4) for v4 in inner):
        return f"{address} leads to a non-public IPv4 address"
    if address.ipv4_mapped is not None or (address in IPV4_COMPATIBLE and inner):
        return None  # not routed as IPv6 at all: only the IPv4 address inside counts, and it is public
    if not address.is_global or address.is_multicast or address.is_unspecified:
        return f"{address} is not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """A webhook URL resolved once: where to connect, and what to say to the host once connected."""

    scheme: str
    host: str  # the name in the URL: Host header, SNI and certificate check
    port: int
    path: str  # path and query, as sent
    addresses: tuple[str, ...]  # checked addresses, in the resolver's order

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def check_form(url: str, *, allow_insecure: bool | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL, without resolving it. Raises Refused."""
    if allow_insecure is None:
        allow_insecure = settings.WEBHOOK_ALLOW_INSECURE_URLS
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise Refused("Enter a valid URL.") from exc
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes or not host:
        raise Refused("The URL must be an https:// URL with a host.")
    if parts.username or parts.password:
        raise Refused("The URL must not contain credentials.")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def resolve(url: str, *, allow_insecure: bool | None = None) -> Target:
    """Check the URL's form, resolve its host once and check every address. Raises Refused.

    With WEBHOOK_ALLOW_INSECURE_URLS (local and test runs) plain HTTP and any address are allowed, but the
    connection is still pinned to what this one resolution returned.
    """
    if allow_insecure is None:
        allow_insecure = settings.WEBHOOK_ALLOW_INSECURE_URLS
    scheme, host, port, path = check_form(url, allow_insecure=allow_insecure)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise Refused("The host name does not resolve.") from exc
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%")[0]
        address = ipaddress.ip_address(text)
        if not allow_insecure and (reason := address_refusal(address)):
            raise Refused(
                f"The URL must not resolve to a private, loopback or link-local address ({reason})."
            )
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise Refused("The host name does not resolve.")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


@dataclass(frozen=True)
class Reply:
    status: int
    latency_ms: int
    address: str  # the checked address the request went to


def _tls_context() -> ssl.SSLContext:
    return _tls_context_for(settings.WEBHOOK_CA_BUNDLE or certifi.where())


@functools.lru_cache(maxsize=4)
def _tls_context_for(cafile: str) -> ssl.SSLContext:
    # Loading a CA bundle costs tens of milliseconds: once per process. Certificates are checked against the
    # host name (check_hostname) given as server_hostname below.
    return ssl.create_default_context(cafile=cafile)


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
    """POST to one of the target's checked addresses (the next on a failed connect), within `timeout` in all.

    Raises urllib3.exceptions.HTTPError (connection, TLS, timeout) when no address answered.
    """
    started = time.monotonic()
    last_error: Exception | None = None
    for address in target.addresses:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            break
        options: dict = {"timeout": urllib3.Timeout(total=remaining), "retries": False, "maxsize": 1}
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, target.port, server_hostname=target.host, ssl_context=_tls_context(),
                cert_reqs="CERT_REQUIRED", **options,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, target.port, **options)
        try:
            # The body of the answer is never read: only its status counts, and a receiver could send a lot.
            response = pool.urlopen(
                "POST", target.path, body=body, headers={**headers, "Host": target.host_header},
                redirect=False, retries=False, assert_same_host=False, preload_content=False,
            )
            return Reply(response.status, int((time.monotonic() - started) * 1000), address)
        except urllib3.exceptions.NewConnectionError as exc:
            last_error = exc  # nothing was sent: the next checked address may answer
        finally:
            pool.close()
    raise last_error or urllib3.exceptions.TimeoutError("no time left to connect")
