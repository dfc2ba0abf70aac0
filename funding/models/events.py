"""The webhook outbox."""

from django.db import models
from django.db.models.expressions import RawSQL
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models.companies import Company


class WebhookEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookEvent(FSMModelMixin, models.Model):
    """Transactional outbox: written in the same transaction as the change it reports, delivered by Celery."""

    # Indexes are written for every event (one per payout outcome): only those a query uses. The company's
    # lookups use webhookevent_company_xact, the due sweep (status, next_attempt_at).
    public_id = models.CharField(max_length=40, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="webhook_events", db_index=False)
    type = models.CharField(max_length=48)
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=40)
    resource_version = models.PositiveIntegerField()
    payload = models.JSONField()
    status = FSMField(default=WebhookEventStatus.PENDING, choices=WebhookEventStatus.choices, protected=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The writing transaction's id (PostgreSQL xid8). GET /api/v1/events pages by (written_xact, id) and shows
    # only events of transactions older than every one still running, so a page never skips an event that
    # commits later (funding/api/selectors.py event_list).
    written_xact = models.BigIntegerField(db_default=RawSQL("pg_current_xact_id()::text::bigint", ()), editable=False)

    class Meta:
        # A constraint, not unique=True: no varchar_pattern_ops twin that no query uses.
        constraints = [models.UniqueConstraint(fields=["public_id"], name="funding_webhookevent_public_id_unique")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["company", "written_xact", "id"], name="webhookevent_company_xact"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @transition(field=status, source=WebhookEventStatus.PENDING, target=WebhookEventStatus.DELIVERED)
    def mark_delivered(self) -> None:
        pass

    @transition(field=status, source=WebhookEventStatus.PENDING, target=WebhookEventStatus.FAILED)
    def mark_failed(self) -> None:
        pass

    @transition(field=status, source=WebhookEventStatus.FAILED, target=WebhookEventStatus.PENDING)
    def redeliver(self) -> None:
        pass
