"""Staff login throttling, kept in the database so every web process sees the same count.

After LOGIN_THROTTLE_MAX_FAILURES failures within LOGIN_THROTTLE_WINDOW_SECONDS for one username (or from one
address), further attempts are refused without checking the password until the window has passed.
A successful login clears the username's failures.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone

from funding.console.models import LoginFailure


def _limits() -> tuple[int, timedelta]:
    return (
        int(getattr(settings, "LOGIN_THROTTLE_MAX_FAILURES", 5)),
        timedelta(seconds=int(getattr(settings, "LOGIN_THROTTLE_WINDOW_SECONDS", 900))),
    )


def client_address(request: HttpRequest | None) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites REMOTE_ADDR.
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def login_is_locked(*, username: str, ip_address: str | None) -> bool:
    max_failures, window = _limits()
    since = timezone.now() - window
    recent = LoginFailure.objects.filter(occurred_at__gte=since)
    if recent.filter(username=username).count() >= max_failures:
        return True
    return bool(ip_address) and recent.filter(ip_address=ip_address).count() >= max_failures


def login_failure_record(*, username: str, ip_address: str | None) -> None:
    LoginFailure.objects.create(username=username[:150], ip_address=ip_address)


def login_failures_clear(*, username: str) -> None:
    LoginFailure.objects.filter(username=username).delete()


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses locked-out usernames/addresses and records each failed password."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any):
        if username is None:
            username = kwargs.get("username") or ""
        ip_address = client_address(request)
        if login_is_locked(username=username, ip_address=ip_address):
            # PermissionDenied stops Django trying further backends: the login fails without a password check.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username, ip_address=ip_address)
        else:
            login_failures_clear(username=username)
        return user
