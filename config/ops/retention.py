"""Data retention: archive, then delete, rows that have outlived their retention. Never the ledger.

Rules come from settings.RETENTION_RULES, e.g.
    {"model": "funding.WebhookEvent", "field": "delivered_at", "filter": {"status": "delivered"}, "days": 90}
Each batch is archived (one JSON line per row, appended and fsynced to RETENTION_ARCHIVE_DIR when set) and
deleted in its own transaction, so a crash loses nothing: at worst the next run archives a batch twice
(archive readers de-duplicate on `pk`). A second run finds nothing left to do.
"""

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from config.ops import metrics

logger = logging.getLogger(__name__)

# Books and audit trail are kept for good; their tables also refuse DELETE at the database.
PROTECTED_APPS = {"ledger"}
PROTECTED_MODELS = {"funding.auditevent", "funding.advance", "funding.payout", "settlement.payoutattempt"}
# Kept at least this long whatever the settings say: GET /api/v1/events serves 30 days (contract 1.7).
MINIMUM_DAYS = {"funding.webhookevent": 30}


def _model_for(rule: dict):
    label = rule["model"]
    model = apps.get_model(label)
    if model._meta.app_label in PROTECTED_APPS or model._meta.label_lower in PROTECTED_MODELS:
        raise ImproperlyConfigured(f"RETENTION_RULES may not name {label}: it is part of the books.")
    minimum = MINIMUM_DAYS.get(model._meta.label_lower, 0)
    if int(rule["days"]) < minimum:
        raise ImproperlyConfigured(f"RETENTION_RULES keep {label} at least {minimum} days, not {rule['days']}.")
    return model


def retention_purge(*, now: datetime | None = None, batch_size: int = 500) -> dict[str, int]:
    """Apply every retention rule. Returns rows deleted per model label."""
    now = now or timezone.now()
    result: dict[str, int] = {}
    with metrics.job_timer("retention_purge") as run:
        for rule in settings.RETENTION_RULES:
            model = _model_for(rule)
            cutoff = now - timedelta(days=int(rule["days"]))
            older = {f"{rule['field']}__lt": cutoff}
            queryset = model._default_manager.filter(**rule.get("filter", {}), **older)
            deleted = 0
            while True:
                with transaction.atomic():
                    batch = list(
                        queryset.order_by("pk").select_for_update(skip_locked=True)[:batch_size]
                    )
                    if not batch:
                        break
                    _archive(rule["model"], batch, now)
                    deleted += model._default_manager.filter(pk__in=[row.pk for row in batch]).delete()[0]
            result[rule["model"]] = deleted
            run.add(deleted)
            logger.info("retention purged %s rows of %s older than %s", deleted, rule["model"], cutoff.date(),
                        extra={"job": "retention_purge", "model": rule["model"], "rows": deleted})
    return result


def _archive(label: str, rows: list, now: datetime) -> None:
    directory = settings.RETENTION_ARCHIVE_DIR
    if not directory:
        return
    path = Path(directory) / f"{label.lower()}-{now:%Y%m%d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(item, ensure_ascii=False) for item in json.loads(serializers.serialize("json", rows))]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
