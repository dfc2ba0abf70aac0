"""The Redis broker transport: kombu's own, with one redis client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` object (over its shared connection pool) for every command
it sends, and redis-py fills a table of some 170 reply callbacks in each one: 85 to 130 us of CPU per object,
more than the command's round trip. Every task the API publishes on commit paid it (docs/benchmarks.md
section 1). A `redis.Redis` is made to be shared: each command still takes a connection from the same pool
and gives it back, so keeping one per channel changes no behaviour, only the cost. Selected by
CELERY_BROKER_TRANSPORT for redis:// and rediss:// broker URLs (config/settings.py).
"""

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        shared = self._shared_client
        # The pool is rebuilt after a disconnect: a client of the old pool is not reused.
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel
