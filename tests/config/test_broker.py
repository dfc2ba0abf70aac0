"""The Redis broker transport (config/broker.py) and the publish path of the tasks enqueued on commit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from celery import current_app
from django.conf import settings
from kombu import Connection

from config.broker import tasks_send
from funding.services.events import events_schedule_delivery
from settlement.services.disbursement.scheduling import advance_schedule_dispatch
from tests.broker_helpers import queue_messages, redis_commands_recorded

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"), reason="these tests need a Redis broker"
)


@pytest.fixture
def commands(monkeypatch):
    return redis_commands_recorded(monkeypatch)


def _taken(client, queue: str, marker) -> list[tuple[str, list, dict]]:
    """Only the messages whose args hold `marker`: a bench may publish onto the same Redis database meanwhile."""
    return queue_messages(client, queue, marker)


MARK = 9_100_000_000  # ids no real advance or event has


def test_a_channel_keeps_one_client_until_its_pool_is_rebuilt():
    with Connection(settings.CELERY_BROKER_URL, transport="config.broker:Transport") as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first:
            assert first.ping() is True
        with channel.conn_or_acquire() as second:
            pass
        assert second is first
        assert first.connection_pool is channel.pool
        # A client passed in is used as it is.
        given = redis.Redis(connection_pool=channel.pool)
        with channel.conn_or_acquire(given) as client:
            assert client is given
        # After a disconnect kombu builds a new pool: the old pool's client is not reused.
        channel._pool = None
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping() is True


def test_the_engine_publishes_through_the_shared_client_transport_on_a_direct_exchange():
    assert settings.CELERY_BROKER_TRANSPORT == "config.broker:Transport"
    assert settings.CELERY_TASK_DEFAULT_EXCHANGE_TYPE == "direct"
    assert {q.exchange.type for q in settings.CELERY_TASK_QUEUES} == {"direct"}
    with current_app.connection_for_write() as conn:
        assert conn.transport_cls == "config.broker:Transport"
        assert type(conn.default_channel).__module__ == "config.broker"


def test_a_dispatch_publish_is_one_lpush_onto_the_disbursement_queue(settings, commands):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    queue = f"{settings.CELERY_QUEUE_PREFIX}disbursement"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    advance_schedule_dispatch(advance_id=MARK, payouts=3)  # the producer's first use declares the queue
    _taken(client, queue, str(MARK))
    commands.clear()

    advance_schedule_dispatch(advance_id=MARK + 1, payouts=3)

    assert commands == ["LPUSH"]  # no SMEMBERS of the exchange's bindings first
    assert _taken(client, queue, str(MARK + 1)) == [
        ("settlement.dispatch_batch", [MARK + 1], {"exchange": "", "routing_key": queue})
    ]




def test_several_tasks_go_in_one_pipeline_in_order(settings, commands):
    queue = f"{settings.CELERY_QUEUE_PREFIX}disbursement"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    tasks_send("settlement.dispatch_batch", [[MARK]])  # the producer's first use declares the queue
    _taken(client, queue, str(MARK))
    commands.clear()

    tasks_send("settlement.dispatch_batch", [[MARK + 7], [MARK + 8], [MARK + 9]])

    assert commands == ["PIPELINE LPUSH LPUSH LPUSH"]
    assert [(name, args) for name, args, _ in _taken(client, queue, str(MARK)[:7])] == [
        ("settlement.dispatch_batch", [MARK + n]) for n in (7, 8, 9)
    ]


def test_a_large_advance_enqueues_its_dispatch_batches_in_one_round_trip(settings, commands):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    settings.DISBURSEMENT_BATCH_SIZE = 100
    queue = f"{settings.CELERY_QUEUE_PREFIX}disbursement"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    advance_schedule_dispatch(advance_id=MARK, payouts=3)  # the producer's first use declares the queue
    _taken(client, queue, str(MARK))
    commands.clear()

    advance_schedule_dispatch(advance_id=MARK + 31, payouts=250)

    assert commands == ["PIPELINE LPUSH LPUSH LPUSH"]
    assert [(name, args) for name, args, _ in _taken(client, queue, str(MARK + 31))] == [
        ("settlement.dispatch_batch", [MARK + 31])
    ] * 3


@pytest.mark.django_db(transaction=True)
def test_webhook_batches_are_enqueued_on_commit_in_one_round_trip(settings, commands):
    from django.db import transaction

    settings.WEBHOOK_ENQUEUE_ON_COMMIT = True
    settings.WEBHOOK_BATCH_SIZE = 2
    queue = f"{settings.CELERY_QUEUE_PREFIX}webhooks"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    tasks_send("funding.api.tasks.webhook_deliver_events", [[[MARK]]])  # the producer declares the queue
    _taken(client, queue, str(MARK))
    commands.clear()
    ids = [MARK + n for n in range(1, 6)]
    with transaction.atomic():
        events_schedule_delivery(event_ids=ids)
        assert commands == []  # nothing before the commit
    assert commands == ["PIPELINE LPUSH LPUSH LPUSH"]
    assert [(name, args) for name, args, _ in _taken(client, queue, str(MARK)[:7])] == [
        ("funding.api.tasks.webhook_deliver_events", [batch]) for batch in (ids[0:2], ids[2:4], ids[4:])
    ]


def test_amqp_brokers_keep_kombus_transport_and_the_topic_exchange():
    """RabbitMQ's native delayed delivery needs the topic exchange; its transport is kombu's own."""
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
    }
    code = (
        "import config.settings as s; "
        "print(s.CELERY_TASK_DEFAULT_EXCHANGE_TYPE, sorted({q.exchange.type for q in s.CELERY_TASK_QUEUES}), "
        "getattr(s, 'CELERY_BROKER_TRANSPORT', None))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split("\n")[0] == "topic ['topic'] None"
