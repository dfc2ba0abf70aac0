"""Per API key request budget: a fixed-window counter in the shared cache (Redis or PostgreSQL).

The budget holds across all processes because the counter lives in the shared cache. A window is the
period of API_THROTTLE_RATE ("600/min": 60 s) aligned to the epoch; a key may spend the whole budget in
each window. With Redis the check is one round trip (INCRBY + EXPIRE in one write) on a connection kept per process
(config.cache.RedisLine).

If Redis cannot be reached the request is let through and a warning is logged (at most one line every
10 s per process, with the count of requests let through): the throttle protects capacity, not money;
signatures, nonces, idempotency and limits are enforced in PostgreSQL. Any other cache backend
(PostgreSQL's DatabaseCache in tests and `make run`) raises as before.
"""

import functools
import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from config.cache import redis_line

logger = logging.getLogger(__name__)

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WARN_EVERY_SECONDS = 10.0


@functools.lru_cache(maxsize=16)
def rate_parse(rate: str) -> tuple[int, int]:
    """ "600/min" -> (600, 60). Same notation as DRF: the period's first letter counts (s, m, h, d)."""
    count, _, period = rate.partition("/")
    limit = int(count)
    duration = _DURATIONS[period.strip()[0].lower()]
    if limit < 1:
        raise ValueError(f"API_THROTTLE_RATE must allow at least one request: {rate!r}")
    return limit, duration


class _Unavailable:
    """Rate-limited warning for a throttle that cannot reach Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_logged = float("-inf")
        self._suppressed = 0

    def report(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_logged < _WARN_EVERY_SECONDS:
                self._suppressed += 1
                return
            let_through, self._suppressed, self._last_logged = self._suppressed + 1, 0, now
        logger.warning(
            "API throttle: Redis unavailable (%s); %d request(s) let through unthrottled since the last warning",
            type(exc).__name__,
            let_through,
        )


_unavailable = _Unavailable()


def window_increment(*, key: str, duration: int) -> int | None:
    """Add one to the counter `key` (expiring after `duration` s) and return it; None if Redis is down."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        cache_key = backend.make_and_validate_key(key)
        try:
            count, _ = redis_line(backend).execute(("INCRBY", cache_key, 1), ("EXPIRE", cache_key, duration))
        except RedisError as exc:
            _unavailable.report(exc)
            return None
        return int(count)
    # Not atomic across processes with every backend (DatabaseCache: read, then write); tests and local runs.
    backend.add(key, 0, duration)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add() and incr()
        backend.add(key, 1, duration)
        return 1


class ApiKeyRateThrottle(BaseThrottle):
    """API_THROTTLE_RATE requests per window and API key (request.auth.key_id)."""

    scope = "api_key"

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        api_key = getattr(request, "auth", None)
        if api_key is None:
            return True
        limit, duration = rate_parse(settings.API_THROTTLE_RATE)
        now = time.time()
        window = int(now // duration)
        count = window_increment(key=f"throttle_{self.scope}_{api_key.key_id}_{window}", duration=duration)
        if count is None or count <= limit:
            return True
        self._wait = (window + 1) * duration - now
        return False

    def wait(self) -> float | None:
        """Seconds to the end of the current window (the Retry-After header rounds it up)."""
        return self._wait
