"""Celery tasks of the API app. Thin: the work is in funding.api.webhooks and funding.api.services."""

from celery import shared_task

from funding.api.services import api_prune as _api_prune
from funding.api.webhooks import webhook_deliver, webhook_due_ids, webhooks_deliver_batch


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver_event(event_id: int) -> None:
    webhook_deliver(event_id=event_id)


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver_events(event_ids: list[int]) -> int:
    """A batch of events written set-based (funding.services.events.events_schedule_delivery)."""
    return webhooks_deliver_batch(event_ids=event_ids)


@shared_task(ignore_result=True)
def webhooks_enqueue_due() -> int:
    """Beat: enqueue every due event. Duplicates are harmless: delivery claims the row first."""
    ids = webhook_due_ids()
    for event_id in ids:
        webhook_deliver_event.delay(event_id)
    return len(ids)


@shared_task(ignore_result=True)
def api_prune() -> None:
    _api_prune()
