"""Webhook delivery (contract 1.6): claim with SKIP LOCKED, POST outside any transaction, record attempts."""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import urllib3
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.ops import metrics
from funding.api import outbound
from funding.api.crypto import secret_decrypt
from funding.api.models import WebhookDeliveryAttempt, WebhookEndpoint
from funding.models import Company, WebhookEvent, WebhookEventStatus, new_public_id

logger = logging.getLogger(__name__)

# While one worker delivers an event, its next_attempt_at is pushed this far ahead so nobody else takes it.
CLAIM_LEASE_SECONDS = 60


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def event_body(event: WebhookEvent) -> bytes:
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_due_ids(*, limit: int | None = None) -> list[int]:
    return list(
        WebhookEvent.objects.filter(status=WebhookEventStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[: limit or settings.WEBHOOK_BATCH_SIZE]
    )


def webhook_claim(*, event_id: int) -> WebhookEvent | None:
    """Take a due event for one delivery attempt. Rows another worker holds are skipped, never waited for."""
    now = timezone.now()
    with transaction.atomic():
        event = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, status=WebhookEventStatus.PENDING, next_attempt_at__lte=now)
            .select_related("company")
            .first()
        )
        if event is None:
            return None
        event.next_attempt_at = now + timedelta(seconds=CLAIM_LEASE_SECONDS)
        event.save(update_fields=["next_attempt_at"])
    return event


@dataclass(frozen=True)
class Outcome:
    url: str
    status_code: int | None
    latency_ms: int | None
    error: str
    refused: bool = False  # the URL failed the address check: nothing was sent

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_send(*, url: str, secret: str, event_id: str, event_type: str, body: bytes) -> Outcome:
    """POST one signed body (contract 1.6 headers) to `url`: resolved once, checked, connected to as checked."""
    try:
        target = outbound.resolve(url)  # DNS may have changed since registration
    except outbound.Refused as exc:
        return Outcome(url, None, None, f"URL refused: {exc}", refused=True)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "advance-engine-webhooks/1",
        "X-Event-Id": event_id,
        "X-Event-Type": event_type,
        "X-Timestamp": timestamp,
        "X-Signature": webhook_signature(secret, timestamp, body),
    }
    started = time.monotonic()
    try:
        reply = outbound.post(target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except urllib3.exceptions.HTTPError as exc:
        latency = int((time.monotonic() - started) * 1000)
        return Outcome(url, None, latency, f"{type(exc).__name__}: {exc}"[:500])
    error = "" if 200 <= reply.status < 300 else f"HTTP {reply.status}"
    return Outcome(url, reply.status, reply.latency_ms, error)


def _post(event: WebhookEvent) -> Outcome:
    endpoint = WebhookEndpoint.objects.filter(company=event.company).first()
    if endpoint is None or not endpoint.url:
        return Outcome("", None, None, "no webhook URL registered")
    return signed_send(
        url=endpoint.url,
        secret=secret_decrypt(endpoint.secret_encrypted),
        event_id=event.public_id,
        event_type=event.type,
        body=event_body(event),
    )


def webhook_record(*, event_id: int, outcome: Outcome) -> WebhookEvent:
    """Store the attempt and move the event: delivered, retry later, or failed after the last try."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        number = event.attempt_count + 1
        WebhookDeliveryAttempt.objects.create(
            event=event,
            number=number,
            url=outcome.url[:500],
            attempted_at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            succeeded=outcome.ok,
            error=outcome.error[:500],
        )
        event.attempt_count = number
        fields = ["attempt_count", "last_error", "next_attempt_at"]
        event.last_error = outcome.error[:500]
        if event.status != WebhookEventStatus.PENDING:
            pass  # staff or another path settled it meanwhile; keep the attempt, change nothing else
        elif outcome.ok:
            event.mark_delivered()
            event.delivered_at = now
            fields += ["status", "delivered_at"]
        elif number > len(schedule):
            event.mark_failed()
            fields.append("status")
        else:
            event.next_attempt_at = now + timedelta(seconds=schedule[number - 1])
        event.save(update_fields=fields)
    return event


def webhook_deliver(*, event_id: int) -> WebhookEvent | None:
    """One delivery attempt of one event, if it is due and nobody else holds it. Returns None if skipped."""
    event = webhook_claim(event_id=event_id)
    if event is None:
        return None
    return _attempt(event)


def _attempt(event: WebhookEvent) -> WebhookEvent | None:
    """POST a claimed event (outside any transaction: no row lock is held while waiting on the network) and
    record the attempt."""
    outcome = _post(event)
    if not outcome.ok:
        logger.info("webhook %s attempt failed: %s", event.public_id, outcome.error)
    metrics.webhook_delivery("delivered" if outcome.ok else "failed")
    return webhook_record(event_id=event.pk, outcome=outcome)


def webhooks_deliver_batch(*, event_ids: list[int]) -> int:
    """One delivery attempt of each due event of `event_ids` nobody else holds: claimed with one statement
    (SKIP LOCKED, a lease), each POSTed outside any transaction, each attempt recorded. Returns the number
    attempted; events already delivered or held elsewhere are skipped."""
    now = timezone.now()
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=event_ids, status=WebhookEventStatus.PENDING, next_attempt_at__lte=now)
            .select_related("company")
            .order_by("pk")
        )
        # The events are POSTed one after another, each up to the timeout: the lease covers the whole batch,
        # or a slow receiver would let the beat hand the last ones to another worker while still held here.
        lease = CLAIM_LEASE_SECONDS + len(events) * settings.WEBHOOK_TIMEOUT_SECONDS
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            next_attempt_at=now + timedelta(seconds=lease)
        )
    for event in events:
        _attempt(event)
    return len(events)


class WebhookNotRegistered(Exception):
    """The company has no webhook URL to send to."""


@dataclass(frozen=True)
class Ping:
    event_id: str
    outcome: Outcome


def webhook_ping(*, company: Company) -> Ping:
    """Send a signed `ping` event to the company's URL now (POST /api/v1/webhook-endpoint/test).

    Same signature, headers, address checks and pinning as every delivery; nothing is stored (a ping is not
    an event of the outbox and is not listed by GET /api/v1/events). Raises WebhookNotRegistered.
    """
    endpoint = WebhookEndpoint.objects.filter(company=company).first()
    if endpoint is None or not endpoint.url:
        raise WebhookNotRegistered()
    event_id = new_public_id("evt")
    payload = {
        "id": event_id,
        "type": "ping",
        "created_at": timezone.localtime().isoformat(timespec="seconds"),
        "data": {"company": company.code},
    }
    outcome = signed_send(
        url=endpoint.url,
        secret=secret_decrypt(endpoint.secret_encrypted),
        event_id=event_id,
        event_type="ping",
        body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
    )
    logger.info("webhook ping %s to %s: %s", event_id, endpoint.url, outcome.status_code or outcome.error)
    return Ping(event_id=event_id, outcome=outcome)
