"""Deliver new webhook events promptly: enqueue once the transaction that wrote them commits.

Best effort only. If the broker is down or the message is lost, the beat job `webhooks_enqueue_due` picks the
row up within seconds, so an event is never lost, only later.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from funding.models import WebhookEvent

logger = logging.getLogger(__name__)


def _enqueue(event_id: int) -> None:
    from funding.api.tasks import webhook_deliver_event

    try:
        webhook_deliver_event.delay(event_id)
    except Exception:  # noqa: BLE001 - the beat job is the safety net; never fail the committed request
        logger.warning(
            "could not enqueue webhook event %s; the beat job will deliver it", event_id, exc_info=True
        )


@receiver(post_save, sender=WebhookEvent, dispatch_uid="api_webhook_enqueue_on_commit")
def webhook_event_created(sender, instance: WebhookEvent, created: bool, **kwargs) -> None:
    if created and settings.WEBHOOK_ENQUEUE_ON_COMMIT:
        transaction.on_commit(lambda: _enqueue(instance.pk))
