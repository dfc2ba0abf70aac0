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


def tasks_send(name: str, arguments: list[list]) -> None:
    """Publish one task `name` per entry of `arguments` (its positional args), without publish retries.

    Several go through one producer in a kombu publish batch: with Redis one pipeline, a single round trip
    for all of them (a 1,000-payout advance's ten dispatch tasks, a set of webhook batches). A failure raises
    and may have lost some or all of them: callers enqueue only what a beat sweep also finds.
    """
    from celery import current_app

    if not arguments:
        return
    # argsrepr/kwargsrepr given: the arguments are a few ids, and Celery's saferepr of them cost ~20 us a task.
    if len(arguments) == 1:
        current_app.send_task(name, args=arguments[0], retry=False, argsrepr=repr(arguments[0]), kwargsrepr="{}")
        return
    with current_app.producer_or_acquire() as producer, producer.batch():
        for args in arguments:
            current_app.send_task(
                name, args=args, producer=producer, retry=False, argsrepr=repr(args), kwargsrepr="{}"
            )
