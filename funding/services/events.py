from django.utils import timezone

from funding.models import Company, WebhookEvent, new_public_id


def event_emit(
    *, company: Company, type: str, resource_type: str, resource_id: str, version: int, data: dict
) -> WebhookEvent:
    """Write a webhook event to the outbox. Call inside the transaction of the change it reports."""
    public_id = new_public_id("evt")
    created_at = timezone.now()
    return WebhookEvent.objects.create(
        public_id=public_id,
        company=company,
        type=type,
        resource_type=resource_type,
        resource_id=resource_id,
        resource_version=version,
        payload={
            "id": public_id,
            "type": type,
            "created_at": timezone.localtime(created_at).isoformat(timespec="seconds"),
            "data": {**data, "version": version},
        },
        next_attempt_at=created_at,
    )
