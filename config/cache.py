"""A connection to the shared cache's Redis, kept per process for the hot paths that talk to Redis directly.

The API throttle (one counter per request) and the dispatch gate (one SET NX per small advance) send fixed
commands and read integers. Through redis-py's client each command costs ~60 us of Python around a round
trip of ~25: Django's RedisCacheClient.get_client() builds a new `redis.Redis` per call (which fills a table
of reply callbacks), and every command checks a connection out of the pool (a lock, a poll() of the socket,
observability counters), runs in the retry wrapper and back. A RedisLine takes one connection of the cache's
pool once and sends the commands packed in one write (bench/profile_request.py: ~100 us less per API call).
"""

import os
import weakref

from django.core.cache.backends.redis import RedisCache
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError


class RedisLine:
    """One connection of a pool, kept by its owner (a cache backend, which Django keeps per thread).

    A kept connection may have been closed by the server (its timeout, a restart) since its last use: a
    command that finds it dead is sent once more on a fresh connection, as redis-py's own retry would. Any
    other failure drops the connection (a reply may be left unread on it) and raises (a RedisError).
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._connection = None
        self._pid = os.getpid()

    def execute(self, *commands: tuple) -> list:
        """Send `commands` (each a tuple of a command's words) in one write; their replies, in order."""
        reused = self._connection is not None and self._pid == os.getpid()
        try:
            return self._send(commands)
        except RedisConnectionError:
            if not reused:
                raise
            return self._send(commands)  # on a fresh connection

    def _send(self, commands: tuple[tuple, ...]) -> list:
        if self._connection is None or self._pid != os.getpid():
            # After a fork the parent's connection is left alone (never shut down from here).
            self._connection, self._pid = self._pool.get_connection(), os.getpid()
        connection = self._connection
        try:
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            return [connection.read_response() for _ in commands]
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)


_lines: "weakref.WeakKeyDictionary[RedisCache, RedisLine]" = weakref.WeakKeyDictionary()


def redis_line(backend: RedisCache) -> RedisLine:
    """The backend's RedisLine (to its first server, where Django's cache writes), built once per backend."""
    line = _lines.get(backend)
    if line is None:
        line = _lines[backend] = RedisLine(backend._cache.get_client(write=True).connection_pool)
    return line
