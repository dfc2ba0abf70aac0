"""The disbursement tasks' own work: what the dispatch sweep enqueues, and how."""

import pytest
import redis
from django.conf import settings

from settlement.tasks import dispatch_pending
from tests.broker_helpers import queue_messages, redis_commands_recorded

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs a Redis broker"),
]


def test_the_dispatch_sweep_enqueues_every_due_advance_in_one_round_trip(advance_factory, monkeypatch):
    advances = [advance_factory("10.00"), advance_factory("20.00", "30.00"), advance_factory("40.00")]
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = f"{settings.CELERY_QUEUE_PREFIX}disbursement"
    dispatch_pending()  # the producer's first use declares the queue
    client.delete(queue)
    commands = redis_commands_recorded(monkeypatch)

    assert dispatch_pending() == 3

    assert commands == ["PIPELINE LPUSH LPUSH LPUSH"]
    assert [(name, args) for name, args, _ in queue_messages(client, queue)] == [
        ("settlement.dispatch_advance", [advance.pk]) for advance in advances
    ]

