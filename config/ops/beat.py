"""The code's beat schedule is the only schedule: entries it no longer has are disabled.

django-celery-beat copies CELERY_BEAT_SCHEDULE into its PeriodicTask table when beat starts and keeps
running whatever is in that table, so a job renamed or removed in the code (or a NIGHTLY_COLLECT_TIMES
time that changed) would go on running from its old row forever. beat_schedule_prune() disables every
enabled row whose name the code's schedule does not have; it runs when beat starts (signal beat_init, before
the scheduler reads the table) and as `manage.py beat_schedule_prune` (the deploy's migrate step).

Rows are disabled, not deleted: their history (last run, run count) stays for the auditors, and a row staff
want back can be re-enabled once the code has it again. Each one is in the audit trail.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

# Entries Celery installs itself (django_celery_beat's install_default_entries).
CELERY_OWN_ENTRIES = frozenset({"celery.backend_cleanup"})


@dataclass(frozen=True)
class PruneResult:
    disabled: list[str]
    kept: int


def beat_schedule_prune(*, actor_label: str = "system:beat") -> PruneResult:
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    from funding.services.audit import audit_record

    wanted = set(settings.CELERY_BEAT_SCHEDULE) | CELERY_OWN_ENTRIES
    disabled: list[str] = []
    with transaction.atomic():
        stale = PeriodicTask.objects.select_for_update().filter(enabled=True).exclude(name__in=wanted)
        for task in stale.order_by("name"):
            task.enabled = False
            task.save(update_fields=["enabled"])
            audit_record(
                action="beat.entry_disabled",
                obj=task,
                actor_label=actor_label,
                before={"enabled": True, "task": task.task},
                after={"enabled": False},
                reason="not in the code's CELERY_BEAT_SCHEDULE",
            )
            disabled.append(task.name)
        if disabled:
            PeriodicTasks.update_changed()  # running schedulers re-read the table
    kept = PeriodicTask.objects.filter(enabled=True).count()
    if disabled:
        logger.warning("beat entries not in the code's schedule were disabled: %s", ", ".join(disabled))
    return PruneResult(disabled=disabled, kept=kept)
