"""The API keys a process has read, and the nonces recorded against them (contract 1.1).

An API key's row and its company's are read once per process and kept API_KEY_CACHE_SECONDS (in-process A/B:
the SELECT cost 0.5 ms of Python and 0.2 ms of PostgreSQL CPU per request, 12% and 9%; docs/benchmarks.md).
That staleness never reaches a decision: every request records its nonce, and the statement that records it
checks that the key row and its company are still what the signature was checked against (not revoked, the same
ciphertext, the company's status and code; services._KEY_CURRENT). When they are not, nothing is recorded, the
row is read again, and the request goes on only if the key is still active with the very secret that verified
it (a secret re-encrypted under a new Fernet key is the same secret); otherwise it gets authentication_failed.
So a revocation, a replaced secret or a suspension applies to the next request, as when the row was read every
time.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from config.db import prepared_cursor
from funding.api.errors import ApiError
from funding.api.models import ApiKey
from funding.api.services import KeyNotCurrent, PendingNonce, api_key_secret, nonce_register
from funding.models import Company

T = TypeVar("T")


def authentication_failed(message: str = "Authentication failed.") -> ApiError:
    return ApiError(401, "authentication_failed", message)


# The key lookup runs on every request, so it skips the ORM's query compilation: one fixed statement
# (built once per process from the models' metadata) reads the active key and its company, and the rows
# become model instances the way the ORM itself builds them (Model.from_db). Revocation stays immediate:
# each request's nonce statement checks the row is still current (see the module's docstring).
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
    """The active (not revoked) key `key_id` with its company loaded, or None: one SELECT, every call (see
    api_key_for for the cached read)."""
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
# the configured decryption keys; the nonce's statement still decides whether the key is active.
_secrets: dict[tuple[int, str, tuple[str, ...]], str] = {}
_SECRETS_MAX = 1024


def api_key_plain_secret(api_key: ApiKey) -> str:
    cache_key = (api_key.pk, api_key.secret_encrypted, tuple(settings.API_SECRET_ENCRYPTION_KEYS))
    secret = _secrets.get(cache_key)
    if secret is None:
        secret = api_key_secret(api_key)
        if len(_secrets) >= _SECRETS_MAX:
            _secrets.clear()
        _secrets[cache_key] = secret
    return secret


# Active keys read by this process: key id -> (key with its company, monotonic time of the read).
_keys: dict[str, tuple[ApiKey, float]] = {}
_KEYS_MAX = 4096


def api_key_for(*, key_id: str, fresh: bool = False) -> ApiKey | None:
    """The active key `key_id` with its company: this process's copy if read within API_KEY_CACHE_SECONDS (and
    not `fresh`), else read now (api_key_active). None if there is no such active key."""
    if not fresh:
        entry = _keys.get(key_id)
        if entry is not None and time.monotonic() - entry[1] < settings.API_KEY_CACHE_SECONDS:
            return entry[0]
    api_key = api_key_active(key_id=key_id)
    if api_key is None:
        _keys.pop(key_id, None)
    else:
        if len(_keys) >= _KEYS_MAX:
            _keys.clear()
        _keys[key_id] = (api_key, time.monotonic())
    return api_key


def pending_nonce_for(api_key: ApiKey, nonce: str) -> PendingNonce:
    """The nonce of a request whose signature `api_key` verified, with the row as it was read."""
    return PendingNonce(
        api_key_id=api_key.pk, key_id=api_key.key_id, nonce=nonce, secret=api_key_plain_secret(api_key),
        secret_encrypted=api_key.secret_encrypted, company_status=api_key.company.status,
        company_code=api_key.company.code,
    )


def pending_nonce_renew(stale: PendingNonce) -> tuple[PendingNonce, ApiKey] | None:
    """After KeyNotCurrent: the key read again. The nonce against the fresh row, and the row, if the key is still
    active with the secret that verified the request; None if the request must be refused (revoked, or a new
    secret)."""
    api_key = api_key_for(key_id=stale.key_id, fresh=True)
    if api_key is None or api_key_plain_secret(api_key) != stale.secret:
        return None
    return pending_nonce_for(api_key, stale.nonce), api_key


def key_current_run(
    nonce: PendingNonce | None, statement: Callable[[PendingNonce | None], T]
) -> tuple[T, ApiKey | None]:
    """Run `statement`, one that records `nonce` and raises KeyNotCurrent having done nothing when the key row
    changed since authentication read it: once, and once more against the row read again if the key still has
    the secret that verified the request. Returns (its result, the row if it was read again); raises
    authentication_failed if the key is no longer the one that verified the request."""
    try:
        return statement(nonce), None
    except KeyNotCurrent:
        renewed = pending_nonce_renew(nonce) if nonce is not None else None
        if renewed is None:
            raise authentication_failed() from None
    nonce, api_key = renewed
    try:
        return statement(nonce), api_key
    except KeyNotCurrent:  # changed again in between: refuse rather than loop
        raise authentication_failed() from None


def nonce_record(nonce: PendingNonce) -> tuple[bool, ApiKey | None]:
    """Record the nonce of a verified request on its own: (False if the key already used it, the key's row if it
    had to be read again). Raises authentication_failed if the key is no longer the one that verified it."""
    return key_current_run(nonce, lambda current: nonce_register(nonce=current))
