"""Signed requests (contract 1.1): HMAC-SHA256 over method, path+query, timestamp, nonce and body hash."""

import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DEFAULT_DB_ALIAS, connections
from rest_framework.authentication import BaseAuthentication

from config.db import prepared_cursor
from funding.api.errors import WWW_AUTHENTICATE, ApiError
from funding.api.idempotency import PENDING_NONCE_ATTR
from funding.api.models import ApiKey
from funding.api.services import PendingNonce, api_key_secret, api_key_touch, nonce_register
from funding.models import Company

KEY_ID_RE = re.compile(r"^ak_[A-Za-z0-9]{8,36}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class ApiClient:
    """request.user for API calls: the company behind a valid key."""

    company: Company
    api_key: ApiKey
    is_authenticated: bool = True

    @property
    def label(self) -> str:
        return f"api:{self.api_key.key_id}"


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()])


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _failed(message: str = "Authentication failed.") -> ApiError:
    return ApiError(401, "authentication_failed", message)


# The key lookup runs on every request, so it skips the ORM's query compilation: one fixed statement
# (built once per process from the models' metadata) reads the active key and its company, and the rows
# become model instances the way the ORM itself builds them (Model.from_db). Revocation stays immediate:
# the row is read on every request.
@dataclass(frozen=True)
class _KeyLookup:
    sql: str
    key_fields: tuple[str, ...]
    company_fields: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Callable, ...], object], ...]  # (column, converters, expression)


@functools.cache
def _key_lookup() -> _KeyLookup:
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    key_meta, company_meta = ApiKey._meta, Company._meta
    key_columns = [f.get_col(key_meta.db_table) for f in key_meta.concrete_fields]
    company_columns = [f.get_col(company_meta.db_table) for f in company_meta.concrete_fields]
    select = ", ".join(f"{quote(col.alias)}.{quote(col.target.column)}" for col in key_columns + company_columns)
    key_table, company_table = quote(key_meta.db_table), quote(company_meta.db_table)

    def key_column(name: str) -> str:
        return f"{key_table}.{quote(key_meta.get_field(name).column)}"

    sql = (
        f"SELECT {select} FROM {key_table} INNER JOIN {company_table}"
        f" ON {company_table}.{quote(company_meta.pk.column)} = {key_column('company')}"
        f" WHERE {key_column('key_id')} = %s AND {key_column('revoked_at')} IS NULL"
    )
    converters = []
    for index, col in enumerate(key_columns + company_columns):
        found = tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection))
        if found:
            converters.append((index, found, col))
    return _KeyLookup(
        sql=sql,
        key_fields=tuple(f.attname for f in key_meta.concrete_fields),
        company_fields=tuple(f.attname for f in company_meta.concrete_fields),
        converters=tuple(converters),
    )


def api_key_active(*, key_id: str) -> ApiKey | None:
    """The active (not revoked) key `key_id` with its company loaded, or None: one SELECT, every call."""
    lookup = _key_lookup()
    connection = connections[DEFAULT_DB_ALIAS]
    with prepared_cursor() as cursor:
        cursor.execute(lookup.sql, [key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    if lookup.converters:
        row = list(row)
        for index, converters, expression in lookup.converters:
            for converter in converters:
                row[index] = converter(row[index], expression, connection)
    split = len(lookup.key_fields)
    api_key = ApiKey.from_db(DEFAULT_DB_ALIAS, lookup.key_fields, row[:split])
    company = Company.from_db(DEFAULT_DB_ALIAS, lookup.company_fields, row[split:])
    ApiKey.company.field.set_cached_value(api_key, company)
    return api_key


# Decrypted secrets per process. The key includes the row's ciphertext (a new secret is a new entry) and
# the configured decryption keys; the row read on every request still decides whether the key is active.
_secrets: dict[tuple[int, str, tuple[str, ...]], str] = {}
_SECRETS_MAX = 1024


def _secret_of(api_key: ApiKey) -> str:
    cache_key = (api_key.pk, api_key.secret_encrypted, tuple(settings.API_SECRET_ENCRYPTION_KEYS))
    secret = _secrets.get(cache_key)
    if secret is None:
        secret = api_key_secret(api_key)
        if len(_secrets) >= _SECRETS_MAX:
            _secrets.clear()
        _secrets[cache_key] = secret
    return secret


class SignatureAuthentication(BaseAuthentication):
    """Deny by default: a request without a valid signature never reaches a view."""

    def authenticate(self, request):
        meta = request._request.META
        key_id = meta.get("HTTP_X_API_KEY", "")
        timestamp = meta.get("HTTP_X_TIMESTAMP", "")
        nonce = meta.get("HTTP_X_NONCE", "")
        signature = meta.get("HTTP_X_SIGNATURE", "")
        if not (key_id and timestamp and nonce and signature):
            raise _failed("The X-Api-Key, X-Timestamp, X-Nonce and X-Signature headers are required.")
        if (
            not KEY_ID_RE.fullmatch(key_id)
            or not TIMESTAMP_RE.fullmatch(timestamp)
            or not NONCE_RE.fullmatch(nonce)
        ):
            raise _failed()
        api_key = api_key_active(key_id=key_id)
        if api_key is None:
            raise _failed()
        try:
            body = request._request.body
        except RequestDataTooBig as exc:
            raise ApiError(
                400,
                "validation_error",
                "The request body is too large.",
                {"body": ["The body is too large."]},
            ) from exc
        path = request._request.get_full_path()
        expected = sign(_secret_of(api_key), request._request.method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
            raise _failed()
        if abs(time.time() - int(timestamp)) > settings.API_SIGNATURE_MAX_SKEW_SECONDS:
            raise ApiError(
                401, "stale_timestamp", "X-Timestamp is more than 300 seconds from the server's time."
            )
        # Only after the signature checks out: otherwise anyone could burn a client's nonces. A write to a view
        # that claims idempotency keys records it with the claim (one statement and one COMMIT less).
        view = (request.parser_context or {}).get("view")
        if request._request.method == "POST" and getattr(view, "nonce_with_idempotency_claim", False):
            setattr(request._request, PENDING_NONCE_ATTR, PendingNonce(api_key_id=api_key.pk, nonce=nonce))
        elif not nonce_register(api_key_id=api_key.pk, nonce=nonce):
            raise ApiError(401, "replayed_request", "This nonce was already used with this key.")
        # The row was just read: skip the (conditional) UPDATE's round trip while it is under a minute old.
        if api_key.last_used_at is None or time.time() - api_key.last_used_at.timestamp() >= 60:
            api_key_touch(api_key=api_key)
        return ApiClient(company=api_key.company, api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE
