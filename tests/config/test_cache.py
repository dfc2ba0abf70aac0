"""config.cache.RedisLine against the real Redis: replies, a connection the server closed, errors, a fork."""

import socket
import uuid

import pytest
import redis
from django.conf import settings
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from config.cache import RedisLine

pytestmark = pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs a Redis")


@pytest.fixture
def key():
    name = f"test-line-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(name)


@pytest.fixture
def line():
    return RedisLine(ConnectionPool.from_url(settings.CELERY_BROKER_URL))


def test_commands_in_one_write_answer_in_order(line, key):
    assert line.execute(("INCRBY", key, 1), ("EXPIRE", key, 60)) == [1, 1]
    assert line.execute(("SET", key, b"1", "NX", "EX", 10)) == [None]  # exists: nil
    assert line.execute(("INCRBY", key, 1), ("TTL", key)) == [2, 60]  # NX left the key and its expiry alone


def test_a_connection_the_server_closed_is_replaced_and_the_command_runs_once(line, key):
    line.execute(("INCRBY", key, 1))
    kept = line._connection
    (client_id,) = line.execute(("CLIENT", "ID"))
    redis.Redis.from_url(settings.CELERY_BROKER_URL).client_kill_filter(_id=client_id)
    assert line.execute(("INCRBY", key, 1)) == [2]
    assert line._connection is not None and line._connection.pid == kept.pid
    assert line.execute(("CLIENT", "ID")) != [client_id]


def test_a_redis_that_cannot_be_reached_raises_at_once(key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    line = RedisLine(ConnectionPool(host="127.0.0.1", port=port, socket_connect_timeout=1))
    with pytest.raises(RedisConnectionError):
        line.execute(("INCRBY", key, 1))
    assert line._connection is None


def test_an_error_reply_drops_the_connection_so_no_reply_is_left_unread(line, key):
    line.execute(("SET", key, b"text"))
    with pytest.raises(ResponseError):
        line.execute(("INCRBY", key, 1), ("TTL", key))  # the TTL's reply is never read on this connection
    assert line._connection is None
    assert line.execute(("GET", key), ("STRLEN", key)) == [b"text", 4]


def test_after_a_fork_the_parent_s_connection_is_left_alone(line, key, monkeypatch):
    line.execute(("INCRBY", key, 1))
    parent = line._connection
    monkeypatch.setattr("config.cache.os.getpid", lambda: parent.pid + 1)  # as in a forked child
    assert line.execute(("INCRBY", key, 1)) == [2]
    assert line._connection is not parent
    assert parent._sock is not None  # not shut down: it belongs to the parent
    parent.disconnect()
