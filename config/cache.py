"""The shared cache's Redis client, kept per process for the hot paths that talk to Redis directly.

Django's RedisCacheClient.get_client() builds a new `redis.Redis` per call, and building one costs more than
the round trip itself (redis-py fills a table of reply callbacks in each). The API throttle and the dispatch
gate send one command per request: they take this client instead.
"""

import weakref

from django.core.cache.backends.redis import RedisCache

# One client per cache backend instance (Django keeps one backend per thread).
_redis_clients: "weakref.WeakKeyDictionary[RedisCache, object]" = weakref.WeakKeyDictionary()


def redis_client(backend: RedisCache, key: str):
    """The backend's redis.Redis for `key`, built once per backend instance."""
    client = _redis_clients.get(backend)
    if client is None:
        client = _redis_clients[backend] = backend._cache.get_client(key, write=True)
    return client
