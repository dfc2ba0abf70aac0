"""Writes of the API app: keys, nonces, idempotency records, webhook endpoints, redelivery."""

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.db import Gate, commit_with, prepared_cursor
from funding.api import outbound
from funding.api.crypto import (
    secret_decrypt,
    secret_encrypt,
    secret_generate,
    secret_is_current,
    secret_reencrypt,
)
from funding.api.models import (
    ApiKey,
    IdempotencyRecord,
    IdempotencyStatus,
    NonceSeen,
    WebhookEndpoint,
)
from funding.errors import InvalidState, ValidationFailed
from funding.models import Company, WebhookEvent, WebhookEventStatus
from funding.services.audit import audit_record


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    secret: str
    revoked_key_ids: list[str]


def api_key_issue(
    *,
    company: Company,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    revoke_oldest_if_full: bool = False,
    label: str = "",
) -> IssuedKey:
    """Issue a key; the plain secret exists only in the return value. At most two active keys per company."""
    with transaction.atomic():
        # The company row serializes concurrent issues, so the two-key rule cannot be raced.
        Company.objects.select_for_update().get(pk=company.pk)
        active = list(
            ApiKey.objects.filter(company=company, revoked_at__isnull=True).order_by("created_at", "id")
        )
        revoked = []
        while len(active) >= settings.API_MAX_ACTIVE_KEYS:
            if not revoke_oldest_if_full:
                count = len(active)
                raise InvalidState(
                    f"{company.code} already has {count} active keys; revoke one before issuing another."
                )
            oldest = active.pop(0)
            _revoke(oldest, actor=actor, actor_label=actor_label, reason="rotated out by a new key")
            revoked.append(oldest.key_id)
        secret = secret_generate("sk")
        key = ApiKey.objects.create(
            key_id=f"ak_{secrets.token_hex(12)}",
            company=company,
            secret_encrypted=secret_encrypt(secret),
            label=label,
        )
        audit_record(
            action="api_key.issued",
            obj=key,
            actor=actor,
            actor_label=actor_label,
            company=company,
            after={"key_id": key.key_id},
        )
    return IssuedKey(key_id=key.key_id, secret=secret, revoked_key_ids=revoked)


def _revoke(key: ApiKey, *, actor, actor_label: str, reason: str) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    audit_record(
        action="api_key.revoked",
        obj=key,
        actor=actor,
        actor_label=actor_label,
        company=key.company,
        before={"active": True},
        after={"active": False},
        reason=reason,
    )


def api_key_revoke(
    *, key: ApiKey, actor: AbstractBaseUser | None = None, actor_label: str = "", reason: str = ""
) -> ApiKey:
    """Revoke at once: the next request signed with it fails authentication."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().select_related("company").get(pk=key.pk)
        if key.revoked_at is None:
            _revoke(key, actor=actor, actor_label=actor_label, reason=reason)
    return key


def api_key_secret(key: ApiKey) -> str:
    return secret_decrypt(key.secret_encrypted)


def api_key_touch(*, api_key: ApiKey) -> None:
    """Note when a key was last used, at most once a minute (a write per request would be wasteful)."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=60))
    ).update(last_used_at=now)


@dataclass(frozen=True)
class PendingNonce:
    """A verified request's nonce, and what its signature was checked against: the key row as authentication
    read it (possibly from its per-process cache), which the statement recording the nonce checks is current.

    The claim of an idempotency key records it in its own statement (a round trip and a COMMIT, with its WAL
    flush, fewer per write request; the nonce then commits with the request's outcome). authentication.py leaves
    it pending only for views that claim idempotency keys, and ApiView.finalize_response records any nonce still
    pending (a request refused before its claim).
    """

    api_key_id: int
    key_id: str
    nonce: str
    secret: str = field(repr=False)  # the plain secret that verified the signature
    secret_encrypted: str = field(repr=False)  # the row's ciphertext it was read from
    company_status: str = ""
    company_code: str = ""


class KeyNotCurrent(Exception):
    """The key row (or its company's status or code) is no longer what the signature was checked against:
    revoked, a new secret or ciphertext, the company suspended. Nothing was recorded; authenticate again."""


# The key as authentication saw it, still current: not revoked, same ciphertext, its company's status and code
# unchanged. Every statement that records a nonce checks it, so a revocation or a suspension takes effect at
# once although the key's row is read once per process (funding/api/keys.py). Parameters: key id,
# ciphertext, company status, company code.
_KEY_CURRENT = """
    SELECT true AS current FROM api_apikey k JOIN funding_company c ON c.id = k.company_id
     WHERE k.id = %s::bigint AND k.revoked_at IS NULL AND k.secret_encrypted = %s::text
       AND c.status = %s::text AND c.code = %s::text
"""

# Records (key, nonce) if the CTE `key` has its row, unless the key used the nonce within the window; returns a
# row only if it recorded it. Parameters: key id, nonce, key id again (a NULL key records nothing), window in
# seconds. One statement with the check, so race-free; also the first part of the idempotency claim's statement.
_NONCE_UPSERT = """
    INSERT INTO api_nonceseen (key_id, nonce, seen_at)
    SELECT %s::bigint, %s::text, now() FROM key WHERE %s::bigint IS NOT NULL
    ON CONFLICT (key_id, nonce) DO UPDATE SET seen_at = now()
     WHERE api_nonceseen.seen_at < now() - make_interval(secs => %s::int)
    RETURNING id
"""


def _key_current_params(nonce: PendingNonce | None) -> list:
    if nonce is None:
        return [None, None, None, None]
    return [nonce.api_key_id, nonce.secret_encrypted, nonce.company_status, nonce.company_code]


def nonce_register(*, nonce: PendingNonce) -> bool:
    """Record a nonce; False if this key already used it within the window. Raises KeyNotCurrent (nothing
    recorded) if the key changed since authentication read it."""
    with prepared_cursor() as cursor:
        cursor.execute(
            f"WITH key AS ({_KEY_CURRENT}), nonce AS ({_NONCE_UPSERT})"
            " SELECT (SELECT count(*) FROM key), (SELECT count(*) FROM nonce)",
            [
                *_key_current_params(nonce), nonce.api_key_id, nonce.nonce, nonce.api_key_id,
                settings.API_NONCE_WINDOW_SECONDS,
            ],
        )
        current, recorded = cursor.fetchone()
    if not current:
        raise KeyNotCurrent()
    return bool(recorded)


# Idempotency (contract 1.4) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    fresh: bool  # True: this request owns the key and must run the operation, then complete `record_id`
    record_id: int | None = None
    existing: IdempotencyRecord | None = None  # not fresh: the record holding the key; None while in progress


# pg_try_advisory_xact_lock(namespace, hash): the namespace keeps these locks apart from the engine's others.
IDEMPOTENCY_LOCK_NAMESPACE = 0x1DE0


class NonceReplayed(Exception):
    """The request's nonce was already used with its key (checked with the claim, see PendingNonce)."""


class ClaimGate(Gate):
    """The claim of an idempotency key as a config.db.Gate: run first in the operation's own statement (one round
    trip fewer), or on its own by idempotency_claim_result when the operation never ran one."""

    def __init__(self, *, company: Company, key: str, method: str, path: str, request_hash: str,
                 nonce: PendingNonce | None) -> None:
        self.company, self.key, self.request_hash, self.nonce = company, key, request_hash, nonce
        self.now = now = timezone.now()
        key_id = nonce.api_key_id if nonce else None
        super().__init__(
            ctes=f"""
            key AS (SELECT true AS current WHERE %s::bigint IS NULL UNION ALL {_KEY_CURRENT}),
            nonce AS ({_NONCE_UPSERT}),
            lock AS (
                SELECT pg_try_advisory_xact_lock(%s::int, hashtext(%s::text || ':' || %s::text)) AS got FROM key
            ),
            claimed AS (
                INSERT INTO api_idempotencyrecord
                       (company_id, key, method, path, request_hash, status, response_body, claimed_at, created_at)
                SELECT %s::bigint, %s::text, %s::text, %s::text, %s::text, %s::text, '', %s::timestamptz,
                       %s::timestamptz
                  FROM lock WHERE lock.got
                ON CONFLICT (company_id, key) DO NOTHING
                RETURNING id
            )""",
            # Open: the key is this request's and its nonce (if any) was recorded; only then may the operation run.
            columns="""(SELECT id FROM claimed) IS NOT NULL AND (%s::bigint IS NULL OR EXISTS (SELECT FROM nonce))
                       AS open, (SELECT count(*) FROM key), (SELECT count(*) FROM nonce), (SELECT got FROM lock),
                       (SELECT id FROM claimed) AS record_id""",
            params=[
                key_id, *_key_current_params(nonce), key_id, nonce.nonce if nonce else None, key_id,
                settings.API_NONCE_WINDOW_SECONDS, IDEMPOTENCY_LOCK_NAMESPACE, str(company.pk), key,
                company.pk, key, method, path[:2000], request_hash, IdempotencyStatus.IN_PROGRESS, now, now,
                key_id,
            ],
            width=5,
        )


def idempotency_claim(
    *, company: Company, key: str, method: str, path: str, request_hash: str, nonce: PendingNonce | None = None
) -> Claim:
    """Take the key inside the caller's transaction, or return the record that already holds it.

    With `nonce`, records it in the same statement if its key is still current (else raises KeyNotCurrent,
    having done nothing); raises NonceReplayed (the caller's transaction must then roll back) if it was used
    already.

    Must run inside the transaction that also runs the operation and stores its response: the record is
    committed only together with them, so a request that dies leaves no trace and its retry runs afresh. A
    transaction-scoped advisory lock on the key tells a concurrent duplicate at once (request_in_progress)
    instead of making it wait; INSERT ... ON CONFLICT sees records committed after this statement began.
    """
    return idempotency_claim_result(
        ClaimGate(company=company, key=key, method=method, path=path, request_hash=request_hash, nonce=nonce)
    )


def idempotency_claim_result(gate: ClaimGate) -> Claim:
    """What the claim `gate` found, as idempotency_claim() answers; runs it on its own first if it has not run (its
    operation refused the request before its statement). Raises KeyNotCurrent or NonceReplayed as it does."""
    if gate.row is None:
        with prepared_cursor() as cursor:
            cursor.execute(gate.sql(), gate.params)
            gate.row = cursor.fetchone()
    _, key_current, nonce_recorded, got_lock, record_id = gate.row
    if not key_current:
        raise KeyNotCurrent()  # nothing was recorded, locked or claimed
    if gate.nonce is not None and not nonce_recorded:
        raise NonceReplayed()
    if not got_lock:
        return Claim(fresh=False)
    if record_id is not None:
        return Claim(fresh=True, record_id=record_id)
    record = IdempotencyRecord.objects.get(company=gate.company, key=gate.key)
    if record.status == IdempotencyStatus.IN_PROGRESS and record.request_hash == gate.request_hash:
        # Left by a request of an earlier version, which committed its claim on its own: after the lease, a
        # retry may take over (nothing holds the advisory lock, so no live request owns it).
        stale_before = gate.now - timedelta(seconds=settings.API_IDEMPOTENCY_LEASE_SECONDS)
        taken = IdempotencyRecord.objects.filter(
            pk=record.pk, status=IdempotencyStatus.IN_PROGRESS, claimed_at__lt=stale_before
        ).update(claimed_at=gate.now)
        if taken:
            return Claim(fresh=True, record_id=record.pk)
    return Claim(fresh=False, existing=record)


def idempotency_complete(*, record_id: int, status: int, body_json: str) -> None:
    """Store the response as the last statement of the atomic block that ran the operation, so both commit or
    neither. When that block is the outermost one, the statement carries its COMMIT in the same round trip
    (config.db.commit_with); a record that is not in progress raises in the database, before that COMMIT."""
    commit_with(
        "SELECT api_idempotency_complete(%s::bigint, %s::int, %s::text, %s::timestamptz)",
        [record_id, status, body_json, timezone.now()],
    )


def idempotency_release(*, record_id: int) -> None:
    """Give up a claim whose request is not to be stored (it failed for a reason a retry may not meet)."""
    IdempotencyRecord.objects.filter(pk=record_id, status=IdempotencyStatus.IN_PROGRESS).delete()


def api_prune() -> tuple[int, int]:
    now = timezone.now()
    nonces, _ = NonceSeen.objects.filter(
        seen_at__lt=now - timedelta(seconds=settings.API_NONCE_WINDOW_SECONDS)
    ).delete()
    records, _ = IdempotencyRecord.objects.filter(
        status=IdempotencyStatus.DONE,
        created_at__lt=now - timedelta(days=max(settings.API_IDEMPOTENCY_RETENTION_DAYS, 7)),
    ).delete()
    return nonces, records


# Webhooks (contract 1.6) ---------------------------------------------------------------------------------


def webhook_url_check(url: str) -> None:
    """HTTPS to a public address only, unless WEBHOOK_ALLOW_INSECURE_URLS is on (local and test runs)."""
    try:
        if settings.WEBHOOK_ALLOW_INSECURE_URLS:
            outbound.check_form(url)  # local runs: the host may not resolve yet; deliveries resolve anyway
        else:
            outbound.resolve(url)
    except outbound.Refused as exc:
        raise ValidationFailed(details={"url": [str(exc)]}) from exc


def webhook_endpoint_set(*, company: Company, url: str, actor_label: str) -> tuple[WebhookEndpoint, str]:
    """Register or replace the URL with a fresh secret: returned once in plain text, stored encrypted."""
    webhook_url_check(url)
    secret = secret_generate("whsec")
    with transaction.atomic():
        endpoint, _ = WebhookEndpoint.objects.update_or_create(
            company=company, defaults={"url": url, "secret_encrypted": secret_encrypt(secret)}
        )
        audit_record(
            action="webhook_endpoint.set",
            obj=endpoint,
            actor_label=actor_label,
            company=company,
            after={"url": url},
        )
    return endpoint, secret


def webhook_secret_rotate(*, company: Company, actor_label: str) -> str:
    """A fresh signing secret for the company's endpoint (created without a URL if there is none)."""
    secret = secret_generate("whsec")
    with transaction.atomic():
        endpoint, _ = WebhookEndpoint.objects.update_or_create(
            company=company, defaults={"secret_encrypted": secret_encrypt(secret)}
        )
        audit_record(
            action="webhook_endpoint.secret_rotated", obj=endpoint, actor_label=actor_label, company=company
        )
    return secret


def webhook_event_redeliver(
    *, event: WebhookEvent, actor: AbstractBaseUser | None, actor_label: str = ""
) -> bool:
    """Put a failed event back in the queue with a fresh retry schedule. False if it was not failed."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status != WebhookEventStatus.FAILED:
            return False
        event.redeliver()
        event.attempt_count = 0
        event.next_attempt_at = timezone.now()
        event.save(update_fields=["status", "attempt_count", "next_attempt_at"])
        audit_record(
            action="webhook_event.redeliver",
            obj=event,
            actor=actor,
            actor_label=actor_label,
            company=event.company,
            before={"status": "failed"},
            after={"status": "pending"},
        )
    return True


# Key rotation of the secrets at rest ------------------------------------------------------------------------


@dataclass
class ReencryptResult:
    reencrypted: dict[str, int]  # per kind ("api_key", "webhook_endpoint")
    current: int  # already encrypted with the first key: left alone
    unreadable: list[str]  # no configured key decrypts them (named, never shown)

    @property
    def total_reencrypted(self) -> int:
        return sum(self.reencrypted.values())


def api_secrets_reencrypt(*, actor_label: str) -> ReencryptResult:
    """Re-encrypt every stored API key and webhook secret with the first API_SECRET_ENCRYPTION_KEY.

    Secrets already under the first key are left as they are, so a second run changes nothing. Each row is
    locked, re-encrypted and audited in its own transaction: a run that stops half-way loses nothing and the
    next run finishes it. After a successful run, the older keys can be dropped from the setting.
    """
    result = ReencryptResult(reencrypted={"api_key": 0, "webhook_endpoint": 0}, current=0, unreadable=[])
    for kind, model, name in (("api_key", ApiKey, "key_id"), ("webhook_endpoint", WebhookEndpoint, "company_id")):
        for pk in model.objects.exclude(secret_encrypted="").order_by("pk").values_list("pk", flat=True):
            with transaction.atomic():
                row = model.objects.select_for_update().get(pk=pk)
                if not row.secret_encrypted or secret_is_current(row.secret_encrypted):
                    result.current += 1
                    continue
                try:
                    row.secret_encrypted = secret_reencrypt(row.secret_encrypted)
                except ValueError:
                    result.unreadable.append(f"{kind} {getattr(row, name)}")
                    continue
                row.save(update_fields=["secret_encrypted"])
                audit_record(
                    action="api_secret.reencrypted",
                    obj=row,
                    actor_label=actor_label,
                    company=row.company,
                    reason="rotation to the first API_SECRET_ENCRYPTION_KEY",
                )
                result.reencrypted[kind] += 1
    return result
