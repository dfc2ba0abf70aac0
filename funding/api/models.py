"""API keys, replay protection, idempotency records and webhook endpoints/deliveries of payment companies."""

from django.db import models
from django.db.models import Q

from funding.models import Company, WebhookEvent


class ApiKey(models.Model):
    """A company's key pair. The secret is stored encrypted (HMAC verification needs it back), never shown."""

    key_id = models.CharField(max_length=40, unique=True, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="api_keys")
    secret_encrypted = models.TextField(editable=False)
    label = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["company", "-created_at"]
        verbose_name = "API key"
        indexes = [
            models.Index(fields=["company"], condition=Q(revoked_at__isnull=True), name="api_key_active")
        ]

    def __str__(self) -> str:
        return self.key_id

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class NonceSeen(models.Model):
    """Nonces seen per key within the replay window; pruned by a periodic task."""

    # No index of its own: the unique (key, nonce) index leads with it (one index less to write per request).
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+", db_index=False)
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "nonce"], name="api_nonce_unique_per_key")]

    def __str__(self) -> str:
        return self.nonce


class IdempotencyStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"


class IdempotencyRecord(models.Model):
    """The first response to a POST under an Idempotency-Key, replayed for retries (kept >= 7 days)."""

    # No index of its own: the unique (company, key) index leads with it.
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    key = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2000)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=IdempotencyStatus.choices, default=IdempotencyStatus.IN_PROGRESS
    )
    # Text, not JSON: an error body may quote characters PostgreSQL's jsonb refuses (e.g. \u0000).
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    claimed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "key"], name="api_idempotency_key_per_company")
        ]

    def __str__(self) -> str:
        return f"{self.company_id}:{self.key}"


class WebhookEndpoint(models.Model):
    company = models.OneToOneField(Company, on_delete=models.PROTECT, related_name="webhook_endpoint")
    url = models.CharField(max_length=500, blank=True, default="")
    secret_encrypted = models.TextField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.company.code}: {self.url or '(no URL)'}"


class WebhookDeliveryAttempt(models.Model):
    """One HTTP POST of an event: what came back and how long it took. Every attempt is kept."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.PROTECT, related_name="delivery_attempts")
    number = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=500, blank=True, default="")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event.public_id} #{self.number}"


class WebhookOutboxEvent(WebhookEvent):
    """Proxy over funding.WebhookEvent so the API's admin can show deliveries without owning the model."""

    class Meta:
        proxy = True
        verbose_name = "webhook event delivery"
        verbose_name_plural = "webhook event deliveries"
