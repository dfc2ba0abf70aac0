"""Staff login throttling, kept in PostgreSQL so every web process sees the same counts.

Two counters, each in a fixed window of LOGIN_THROTTLE_WINDOW_SECONDS:
- per (username, client address): after LOGIN_THROTTLE_MAX_FAILURES failures that username is refused from
  that address, without a password check, until the window has passed;
- per client address, over all usernames: LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS (default: the same number)
  stops one address guessing across many accounts.
There is deliberately no counter per username alone: strangers failing with a staff member's name from their
own addresses never lock that person out at their own desk. Guessing one account from many addresses is what
the second factor (TOTP, required outside local runs) is for.

The client address is the real one behind trusted proxies (config.ops.client_ip, setting TRUSTED_PROXIES).

Atomic: each attempt first takes its place in both counters with one INSERT ... ON CONFLICT DO UPDATE ...
RETURNING per counter, and is refused when either count is over its limit; concurrent attempts cannot all
pass a check made before any of them was counted. A successful login gives its place back: the (username,
address) counter is cleared and the address counter lowered by one. Every failed password is also kept as a
LoginFailure row for auditors (Console > Staff sign-ins).
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

from config.ops.client_ip import client_ip
from funding.console.models import LoginFailure, LoginThrottle

NO_ADDRESS = "-"

_TABLE = LoginThrottle._meta.db_table
_HIT = f"""
    INSERT INTO {_TABLE} (key, window_started, count) VALUES (%(key)s, now(), 1)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN {_TABLE}.window_started < now() - make_interval(secs => %(window)s)
                     THEN 1 ELSE {_TABLE}.count + 1 END,
        window_started = CASE WHEN {_TABLE}.window_started < now() - make_interval(secs => %(window)s)
                              THEN now() ELSE {_TABLE}.window_started END
    RETURNING count
"""
_GIVE_BACK = f"UPDATE {_TABLE} SET count = GREATEST(count - 1, 0) WHERE key = %(key)s"


def _limits() -> tuple[int, int, int]:
    per_user = int(getattr(settings, "LOGIN_THROTTLE_MAX_FAILURES", 5))
    per_address = getattr(settings, "LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS", None) or per_user
    return per_user, int(per_address), int(getattr(settings, "LOGIN_THROTTLE_WINDOW_SECONDS", 900))


def client_address(request: HttpRequest | None) -> str | None:
    return client_ip(request)


def _user_key(username: str, ip_address: str | None) -> str:
    return f"user:{ip_address or NO_ADDRESS}:{username[:150]}"


def _address_key(ip_address: str | None) -> str:
    return f"addr:{ip_address or NO_ADDRESS}"


def login_attempt_take(*, username: str, ip_address: str | None) -> bool:
    """Count one attempt in both windows, atomically; False if either is over its limit (refuse it)."""
    per_user, per_address, window = _limits()
    with connection.cursor() as cursor:
        cursor.execute(_HIT, {"key": _user_key(username, ip_address), "window": window})
        user_count = cursor.fetchone()[0]
        cursor.execute(_HIT, {"key": _address_key(ip_address), "window": window})
        address_count = cursor.fetchone()[0]
    return user_count <= per_user and address_count <= per_address


def login_is_locked(*, username: str, ip_address: str | None) -> bool:
    """Would the next attempt be refused? (A read for display and tests; the login itself never asks.)"""
    per_user, per_address, window = _limits()
    counts = dict(
        LoginThrottle.objects.filter(
            key__in=[_user_key(username, ip_address), _address_key(ip_address)],
            window_started__gte=timezone.now() - timedelta(seconds=window),
        ).values_list("key", "count")
    )
    return (
        counts.get(_user_key(username, ip_address), 0) >= per_user
        or counts.get(_address_key(ip_address), 0) >= per_address
    )


def login_failure_record(*, username: str, ip_address: str | None) -> None:
    LoginFailure.objects.create(username=username[:150], ip_address=ip_address)


def login_succeeded(*, username: str, ip_address: str | None) -> None:
    """A good password gives the attempt back: the pair's window restarts, the address keeps its others."""
    LoginThrottle.objects.filter(key=_user_key(username, ip_address)).delete()
    with connection.cursor() as cursor:
        cursor.execute(_GIVE_BACK, {"key": _address_key(ip_address)})
    LoginFailure.objects.filter(username=username, ip_address=ip_address).delete()


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses throttled (username, address) pairs and addresses, recording each failure."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any):
        if username is None:
            username = kwargs.get("username") or ""
        ip_address = client_address(request)
        if not login_attempt_take(username=username, ip_address=ip_address):
            # PermissionDenied stops Django trying further backends: the login fails without a password check.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username, ip_address=ip_address)
        else:
            login_succeeded(username=username, ip_address=ip_address)
        return user
