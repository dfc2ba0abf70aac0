"""Events written set-based are delivered in batches: one task per WEBHOOK_BATCH_SIZE, one claim per batch."""

import pytest
from django.db import transaction

from funding.api.models import WebhookDeliveryAttempt
from funding.api.services import webhook_endpoint_set
from funding.api.webhooks import webhooks_deliver_batch
from funding.models import WebhookEvent
from funding.services.events import event_emit, events_schedule_delivery
from tests.funding.api.test_webhooks import Receiver


def _events(company, n):
    return [
        event_emit(company=company, type="payout.succeeded", resource_type="payout", resource_id=f"po_{i}",
                   version=2, data={"id": f"po_{i}"})
        for i in range(n)
    ]


@pytest.mark.django_db
def test_a_batch_is_claimed_once_and_each_event_delivered_once(company_line):
    company = company_line[0]
    events = _events(company, 3)
    with Receiver(fail_times=1) as receiver:
        webhook_endpoint_set(company=company, url=receiver.url, actor_label="test")
        assert webhooks_deliver_batch(event_ids=[e.pk for e in events]) == 3
        # Claimed (leased) or delivered: a second batch of the same ids sends nothing.
        assert webhooks_deliver_batch(event_ids=[e.pk for e in events]) == 0
    assert sorted(h["X-Event-Id"] for h, _, _ in receiver.requests) == sorted(e.public_id for e in events)
    statuses = dict(WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).values_list("public_id", "status"))
    assert sorted(statuses.values()) == ["delivered", "delivered", "pending"]  # the first POST got HTTP 500
    assert WebhookDeliveryAttempt.objects.filter(event__in=events).count() == 3


@pytest.mark.django_db(transaction=True)
def test_set_based_events_are_enqueued_in_batches_by_task_name_on_commit(company_line, settings, monkeypatch):
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    settings.WEBHOOK_ENQUEUE_ON_COMMIT = True
    settings.WEBHOOK_BATCH_SIZE = 2
    with transaction.atomic():
        events_schedule_delivery(event_ids=[11, 12, 13])
        assert sent == []  # nothing before the commit
    assert sent == [("funding.api.tasks.webhook_deliver_events", [[11, 12]]),
                    ("funding.api.tasks.webhook_deliver_events", [[13]])]
    with transaction.atomic():
        events_schedule_delivery(event_ids=[14])
        transaction.set_rollback(True)
    assert len(sent) == 2  # rolled back: nothing enqueued
