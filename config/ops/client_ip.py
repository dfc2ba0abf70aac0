"""The real client address of a request that came through trusted proxies (load balancer, nginx).

X-Forwarded-For is a list each proxy appends to: "client, proxy1, proxy2", and REMOTE_ADDR is the last hop.
Everything left of the first address we did not get from a trusted proxy was written by the client and
may be forged. So the list is read from the right: starting at REMOTE_ADDR, while the hop is one of
TRUSTED_PROXIES, step one entry to the left; the first address that is not a trusted proxy is the client.
With TRUSTED_PROXIES empty (the default) the header is ignored and REMOTE_ADDR is the client.
"""

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.cache
def _networks(configured: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in configured)


def _parse(value: str) -> IPAddress | None:
    """An address from a forwarded hop; tolerates a port ("1.2.3.4:5678", "[2001:db8::1]:443")."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def trusted_proxy(address: IPAddress) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as text, or None when the request has no usable REMOTE_ADDR."""
    if request is None:
        return None
    remote = _parse(request.META.get("REMOTE_ADDR") or "")
    if remote is None:
        return None
    client = remote
    if trusted_proxy(remote):
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:
                break  # a trusted proxy would not write this: keep the last address a proxy vouched for
            client = address
            if not trusted_proxy(address):
                break
    return str(client)
