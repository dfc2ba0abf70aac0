"""The per-key fixed-window throttle: exact counts, windows, Retry-After, Redis and a Redis outage."""

import logging
import os
import socket
import time
import uuid
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from django.core.cache import cache, caches

from config import cache as cache_clients
from funding.api import throttling
from funding.api.throttling import ApiKeyRateThrottle, rate_parse
from tests.funding.api.conftest import error_of

pytestmark = pytest.mark.django_db

# 1_800_000_000 is a multiple of 60: this instant is 15.25 s into a one-minute window (window 30_000_000).
T0 = 1_800_000_015.25


@pytest.fixture
def clock(monkeypatch):
    """Freeze the throttle's clock (only its own: signatures still see the real time)."""
    now = {"t": T0}
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: now["t"], monotonic=time.monotonic))
    return now


def request_for(key_id: str):
    return SimpleNamespace(auth=SimpleNamespace(key_id=key_id))


def decisions(key_id: str, n: int) -> tuple[list[bool], float | None]:
    throttle = ApiKeyRateThrottle()
    allowed = [throttle.allow_request(request_for(key_id), None) for _ in range(n)]
    return allowed, throttle.wait()


def test_rate_notation():
    assert rate_parse("600/min") == (600, 60)
    assert rate_parse("50/s") == (50, 1)
    assert rate_parse("1000/hour") == (1000, 3600)
    assert rate_parse("7/day") == (7, 86400)
    with pytest.raises(ValueError):
        rate_parse("0/s")


def test_window_counter_exact_values(settings, clock):
    cache.clear()
    settings.API_THROTTLE_RATE = "3/min"
    assert decisions("ak_first0001", 5) == ([True, True, True, False, False], 44.75)
    assert cache.get("throttle_api_key_ak_first0001_30000000") == 5
    assert decisions("ak_other0001", 1) == ([True], None)  # each key has its own counter
    assert cache.get("throttle_api_key_ak_other0001_30000000") == 1
    clock["t"] = T0 + 44.5  # 0.25 s before the window ends
    assert decisions("ak_first0001", 1) == ([False], 0.25)
    clock["t"] = 1_800_000_060.0  # the next window starts from zero
    assert decisions("ak_first0001", 4) == ([True, True, True, False], 60.0)
    assert cache.get("throttle_api_key_ak_first0001_30000001") == 4
    assert cache.get("throttle_api_key_ak_first0001_30000000") == 6  # refused requests count too


def test_no_key_no_throttle(settings):
    settings.API_THROTTLE_RATE = "1/min"
    throttle = ApiKeyRateThrottle()
    assert [throttle.allow_request(SimpleNamespace(auth=None), None) for _ in range(3)] == [True, True, True]


def test_429_with_retry_after_to_the_end_of_the_window(api, settings, clock):
    cache.clear()
    settings.API_THROTTLE_RATE = "2/m"
    assert [api.get("/api/v1/credit-line").status_code for _ in range(2)] == [200, 200]
    limited = api.get("/api/v1/credit-line")
    assert limited.status_code == 429
    assert limited["Retry-After"] == "45"  # 44.75 s left, rounded up
    assert error_of(limited) == {
        "code": "rate_limited",
        "message": "Too many requests for this API key; retry later.",
        "details": {"retry_after": 45},
    }


def _redis_url() -> str | None:
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        return None
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1).close()
    except OSError:
        return None
    return url


def test_redis_window_counter_one_round_trip(settings, clock):
    url = _redis_url()
    if url is None:
        pytest.skip("no Redis answers at CELERY_BROKER_URL")
    prefix = f"test-throttle-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    settings.API_THROTTLE_RATE = "3/min"
    backend = caches["default"]
    key = backend.make_and_validate_key("throttle_api_key_ak_redis0001_30000000")
    try:
        assert decisions("ak_redis0001", 5) == ([True, True, True, False, False], 44.75)
        client = backend._cache.get_client(key, write=True)
        assert int(client.get(key)) == 5
        assert 0 < client.ttl(key) <= 60
        assert decisions("ak_redis0001", 1) == ([False], 44.75)
        line = cache_clients._lines[backend]
        connection = line._connection
        sent = []
        send = type(connection).send_packed_command

        def spy(conn, command, *args, **kwargs):
            sent.append(b"".join(command) if isinstance(command, list) else command)
            return send(conn, command, *args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(connection), "send_packed_command", spy)
            decisions("ak_redis0001", 1)
        assert cache_clients._lines[backend] is line and line._connection is connection  # kept, reused
        # One write on the network: INCRBY key 1 and EXPIRE key 60 (RESP), then their two replies are read.
        k = key.encode()
        assert sent == [
            b"*3\r\n$6\r\nINCRBY\r\n$%d\r\n%s\r\n$1\r\n1\r\n*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%s\r\n$2\r\n60\r\n"
            % (len(k), k, len(k), k)
        ]
        assert int(client.get(key)) == 7
    finally:
        backend._cache.get_client(key, write=True).delete(key)


def test_redis_unreachable_lets_requests_through_with_a_warning(settings, caplog, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    settings.API_THROTTLE_RATE = "1/min"
    monkeypatch.setattr(throttling, "_unavailable", throttling._Unavailable())
    with caplog.at_level(logging.WARNING, logger="funding.api.throttling"):
        assert decisions("ak_down00001", 3) == ([True, True, True], None)
    assert [r.getMessage() for r in caplog.records] == [
        "API throttle: Redis unavailable (ConnectionError); 1 request(s) let through unthrottled since the "
        "last warning"
    ]
