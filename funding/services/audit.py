from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from funding.models import AuditEvent, Company


def audit_event_build(
    *,
    action: str,
    obj: Any,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    company: Company | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """One audit row, not saved: what audit_record writes, for set-based jobs that write many with one INSERT
    (audit_records_insert)."""
    return AuditEvent(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else "system"),
        action=action,
        object_type=obj._meta.label_lower if hasattr(obj, "_meta") else str(type(obj).__name__),
        object_id=str(getattr(obj, "public_id", None) or getattr(obj, "pk", "")),
        company=company,
        before=before or {},
        after=after or {},
        reason=reason,
    )


def audit_record(
    *,
    action: str,
    obj: Any,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    company: Company | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append one audit row. Call it inside the transaction of the change it records."""
    event = audit_event_build(action=action, obj=obj, actor=actor, actor_label=actor_label, company=company,
                              before=before, after=after, reason=reason)
    event.save(force_insert=True)
    return event


def audit_records_insert(*, events: list[AuditEvent]) -> list[AuditEvent]:
    """Append many audit rows with one INSERT (append-only: never updated). Call it inside the transaction of
    the changes they record."""
    if not events:
        return []
    return AuditEvent.objects.bulk_create(events)
