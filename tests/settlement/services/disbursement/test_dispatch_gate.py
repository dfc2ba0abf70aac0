"""The dispatch gate: with a Redis cache, small advances publish one coalesced task per currency until it starts;
its batch takes every due payout of the currency (its advance's own first), it opens the gate before it claims,
and a full batch schedules the next one. Large advances and a cache without Redis publish as before."""

import uuid

import pytest
import redis
from celery import current_app
from django.conf import settings as django_settings
from django.core.cache import caches

from funding.models import Payout, PayoutStatus
from settlement.models import PayoutAttempt
from settlement.services.disbursement import advance_dispatch_batch, advance_dispatch_due

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs a Redis"),
]


@pytest.fixture
def sent(monkeypatch):
    """The tasks published, (name, args), in order; nothing reaches a broker."""
    published: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args=None, **kw: published.append((name, tuple(args)))
    )
    return published


@pytest.fixture
def gate(settings):
    """The Redis cache (a key prefix of its own) and dispatch on commit on; yields the gate's Redis key."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.CELERY_BROKER_URL,
            "KEY_PREFIX": f"test-gate-{uuid.uuid4().hex}",
        }
    }
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    settings.DISBURSEMENT_DISPATCH_GATE_SECONDS = 10
    key = caches["default"].make_and_validate_key("dispatch_queued_CNY")
    yield key
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(key)


def _redis():
    return redis.Redis.from_url(django_settings.CELERY_BROKER_URL)


def test_small_advances_publish_one_task_until_it_starts_and_its_batch_takes_them_all(
    advance_factory, gate, sent
):
    first, second, third = advance_factory("10.00"), advance_factory("20.00", "30.00"), advance_factory("40.00")

    assert sent == [("settlement.dispatch_due", (first.pk, "CNY"))]
    assert 9_000 < _redis().pttl(gate) <= 10_000  # a lost task holds the gate only this long (ms, still running)
    assert advance_dispatch_due(advance_id=first.pk, currency="CNY") == 4  # the three advances' payouts
    assert _redis().exists(gate) == 0  # opened before the claim
    assert set(Payout.objects.values_list("status", flat=True)) == {PayoutStatus.SUCCEEDED}
    assert PayoutAttempt.objects.count() == 4

    fourth = advance_factory("50.00")  # the gate is open again: the next advance publishes

    # The gated two never had a task of their own.
    assert sent == [("settlement.dispatch_due", (first.pk, "CNY")), ("settlement.dispatch_due", (fourth.pk, "CNY"))]
    assert {second.pk, third.pk}.isdisjoint(args[0] for _, args in sent)


def test_a_gated_task_whose_own_payouts_were_taken_still_takes_the_others(advance_factory, gate, sent, settings):
    settings.DISBURSEMENT_BATCH_SIZE = 2
    first, second, third = advance_factory("10.00"), advance_factory("20.00"), advance_factory("30.00")
    assert advance_dispatch_batch(advance_id=first.pk, size=1) == 1  # another task took the first's payout
    assert advance_dispatch_batch(advance_id=first.pk) == 0  # a plain batch task stops there

    assert advance_dispatch_due(advance_id=first.pk, currency="CNY") == 2  # the gated task does not

    assert set(Payout.objects.filter(advance__in=[second, third]).values_list("status", flat=True)) == {
        PayoutStatus.SUCCEEDED
    }
    # Its batch came back full (2 of 2): the next task was scheduled through the gate, and finds nothing.
    assert sent == [("settlement.dispatch_due", (first.pk, "CNY"))] * 2
    assert advance_dispatch_due(advance_id=first.pk, currency="CNY") == 0
    assert sent == [("settlement.dispatch_due", (first.pk, "CNY"))] * 2  # not full: nothing more scheduled


def test_a_large_advance_publishes_its_batch_tasks_and_leaves_the_gate_alone(advance_factory, gate, sent, settings):
    settings.DISBURSEMENT_BATCH_SIZE = 2
    large = advance_factory("1.00", "2.00", "3.00")

    assert sent == [("settlement.dispatch_batch", (large.pk,))] * 2
    assert _redis().exists(gate) == 0


def test_a_failed_publish_opens_the_gate_again(advance_factory, gate, monkeypatch, caplog):
    def refused(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(current_app, "send_task", refused)
    advance = advance_factory("10.00")

    assert _redis().exists(gate) == 0  # the next advance tries again
    assert "could not enqueue dispatch of advance" in caplog.text
    assert list(Payout.objects.filter(advance=advance).values_list("status", flat=True)) == [PayoutStatus.PENDING]


def test_without_a_redis_cache_every_advance_publishes_its_own_task(advance_factory, sent, settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    first, second = advance_factory("10.00"), advance_factory("20.00")

    assert sent == [("settlement.dispatch_batch", (first.pk,)), ("settlement.dispatch_batch", (second.pk,))]


def test_gate_seconds_zero_turns_the_gate_off(advance_factory, gate, sent, settings):
    settings.DISBURSEMENT_DISPATCH_GATE_SECONDS = 0
    first, second = advance_factory("10.00"), advance_factory("20.00")

    assert sent == [("settlement.dispatch_batch", (first.pk,)), ("settlement.dispatch_batch", (second.pk,))]
    assert _redis().exists(gate) == 0


def test_a_full_batch_schedules_the_next_task_even_without_a_gate(advance_factory, sent, settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False  # the advances publish nothing; the task is run by hand
    settings.DISBURSEMENT_BATCH_SIZE = 2
    first = advance_factory("10.00")
    advance_factory("20.00"), advance_factory("30.00")

    assert advance_dispatch_due(advance_id=first.pk, currency="CNY") == 2

    assert sent == [("settlement.dispatch_due", (first.pk, "CNY"))]  # not a plain batch task of its advance
    assert advance_dispatch_due(advance_id=first.pk, currency="CNY") == 1
    assert sent == [("settlement.dispatch_due", (first.pk, "CNY"))]
