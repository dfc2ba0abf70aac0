from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from funding.models import AuditEvent, Company


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
    return AuditEvent.objects.create(
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
