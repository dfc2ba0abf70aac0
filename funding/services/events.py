"""The webhook outbox: one event written in the transaction of the change it reports (event_emit), or many at
once for set-based jobs (advance_events_insert, whose `ADVANCE_DATA_SQL` renders the same fields as
funding.representations.advance_representation; a parity test compares them). The payouts' attempts come
from funding_payout_attempt_view (settlement defines it), like the Python side."""

import logging
import secrets

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from ulid import ULID

from config.broker import tasks_send
from funding.models import Company, WebhookEvent, new_public_id
from funding.selectors import outstanding_sql, repaid_sql

logger = logging.getLogger(__name__)

# By name: services never import task modules (routing matches "*webhook*" to the webhooks queue).
WEBHOOK_BATCH_TASK = "funding.api.tasks.webhook_deliver_events"


def event_emit(
    *, company: Company, type: str, resource_type: str, resource_id: str, version: int, data: dict
) -> WebhookEvent:
    """Write a webhook event to the outbox. Call inside the transaction of the change it reports."""
    public_id = new_public_id("evt")
    created_at = timezone.now()
    return WebhookEvent.objects.create(
        public_id=public_id,
        company=company,
        type=type,
        resource_type=resource_type,
        resource_id=resource_id,
        resource_version=version,
        payload={
            "id": public_id,
            "type": type,
            "created_at": timezone.localtime(created_at).isoformat(timespec="seconds"),
            "data": {**data, "version": version},
        },
        next_attempt_at=created_at,
    )


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(column: str, chars: int) -> str:
    return " || ".join(
        f"substr('{CROCKFORD}', (({column} >> {5 * i}) & 31)::int + 1, 1)" for i in reversed(range(chars))
    )


# Monotonic ULIDs, as the ULID spec generates them within one millisecond: python-ulid gives the statement's
# timestamp and the high 40 random bits; the low 40 bits are a random base plus the row number. The ids
# then ascend within the statement, so the outbox's unique index takes them in order (random keys made
# the INSERT several times slower at a million rows), and no PL/pgSQL runs per row.
_EVENT_ID_SQL = f"'evt_' || %(ulid_prefix)s || {_base32('(%(ulid_low)s + w.rn)', 8)}"


def _ulid_params() -> dict:
    prefix = str(ULID())[:18]  # 10 characters of time, 8 of randomness
    return {"ulid_prefix": prefix, "ulid_low": secrets.randbits(39)}  # + row numbers stays below 2**40

_TS = "to_char({col} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+08:00'"

# The fields of funding.representations.payout_representation, for the payout row `p` (a parity test compares
# them); the advance's payload embeds it for each of its payouts.
PAYOUT_DATA_SQL = """json_build_object(
    'id', p.public_id,
    'external_id', p.external_id,
    'status', p.status,
    'amount', p.amount::text,
    'own_funds_amount', p.own_funds_amount::text,
    'advanced_amount', p.advanced_amount::text,
    'beneficiary_name', p.beneficiary_name,
    'account_no_last4', right(p.account_no, 4),
    'bank_code', p.bank_code,
    'failure_code', nullif(p.failure_code, ''),
    'value_date', to_char(p.value_date, 'YYYY-MM-DD'),
    'version', p.version,
    'attempts', coalesce((
        SELECT json_agg(json_build_object(
            'serial', t.serial, 'channel', t.channel, 'status', t.status,
            'failure_code', nullif(t.failure_code, '')) ORDER BY t.number)
          FROM funding_payout_attempt_view t
         WHERE t.payout_id = p.id), '[]'::json)
)"""

ADVANCE_DATA_SQL = f"""
json_build_object(
    'id', v.public_id,
    'external_id', v.external_id,
    'status', v.status,
    'currency', v.currency,
    'amount', v.amount::text,
    'own_funds_amount', v.own_funds_amount::text,
    'advanced_amount', v.advanced_amount::text,
    'disbursed_amount', v.disbursed_amount::text,
    'returned_amount', v.returned_amount::text,
    'fee', v.fee::text,
    'penalty', v.penalty_accrued::text,
    'business_date', to_char(v.business_date, 'YYYY-MM-DD'),
    'due_date', to_char(v.due_date, 'YYYY-MM-DD'),
    'repaid_amount', {repaid_sql("v")}::text,
    'outstanding_amount', {outstanding_sql("v")}::text,
    'version', v.version,
    'created_at', {_TS.format(col="v.created_at")},
    'updated_at', {_TS.format(col="v.updated_at")},
    'payouts', coalesce((
        SELECT json_agg({PAYOUT_DATA_SQL} ORDER BY p.sequence)
          FROM funding_payout p WHERE p.advance_id = v.id), '[]'::json)
)
"""


def advance_events_insert(*, event_type: str, ids_sql: str, params: dict) -> list[int]:
    """Write one outbox event of `event_type` per advance whose id the subquery `ids_sql` returns; returns the
    new events' ids.

    Runs inside the caller's transaction, after the UPDATE that changed the advances (it reads their new
    state and version).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO funding_webhookevent
                   (public_id, company_id, type, resource_type, resource_id, resource_version, payload,
                    status, attempt_count, next_attempt_at, last_error, created_at)
            SELECT v.evt_id, v.company_id, %(event_type)s, 'advance', v.public_id, v.version,
                   json_build_object('id', v.evt_id, 'type', %(event_type)s,
                                     'created_at', {_TS.format(col="now()")},
                                     'data', {ADVANCE_DATA_SQL}),
                   'pending', 0, now(), '', now()
              FROM (SELECT w.*, {_EVENT_ID_SQL} AS evt_id
                      FROM (SELECT a.*, row_number() OVER (ORDER BY a.id) AS rn
                              FROM funding_advance a WHERE a.id IN ({ids_sql})) w) v
            RETURNING id
            """,
            {**params, "event_type": event_type, **_ulid_params()},
        )
        return [row[0] for row in cursor.fetchall()]


def payout_events_insert(*, event_type: str, payout_ids: list[int]) -> list[int]:
    """Write one outbox event of `event_type` per payout (its state as GET shows it), with one INSERT; returns
    the new events' ids. Runs inside the caller's transaction, after the UPDATE that moved the payouts (it
    reads their new state and version)."""
    if not payout_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO funding_webhookevent
                   (public_id, company_id, type, resource_type, resource_id, resource_version, payload,
                    status, attempt_count, next_attempt_at, last_error, created_at)
            SELECT p.evt_id, a.company_id, %(event_type)s, 'payout', p.public_id, p.version,
                   json_build_object('id', p.evt_id, 'type', %(event_type)s,
                                     'created_at', {_TS.format(col="now()")},
                                     'data', {PAYOUT_DATA_SQL}),
                   'pending', 0, now(), '', now()
              FROM (SELECT w.*, {_EVENT_ID_SQL} AS evt_id
                      FROM (SELECT p.*, row_number() OVER (ORDER BY p.id) AS rn
                              FROM funding_payout p WHERE p.id = ANY(%(ids)s)) w) p
              JOIN funding_advance a ON a.id = p.advance_id
             ORDER BY p.id
            RETURNING id
            """,
            {"event_type": event_type, "ids": list(payout_ids), **_ulid_params()},
        )
        return [row[0] for row in cursor.fetchall()]


def events_schedule_delivery(*, event_ids: list[int]) -> None:
    """Deliver events written set-based (no post_save signal fires for them) in batches of
    WEBHOOK_BATCH_SIZE, one task each, once the writing transaction commits. Best effort: the beat job
    `webhooks_enqueue_due` delivers whatever a lost message leaves behind."""
    if not event_ids or not settings.WEBHOOK_ENQUEUE_ON_COMMIT:
        return
    ids = list(event_ids)
    size = settings.WEBHOOK_BATCH_SIZE

    def enqueue() -> None:
        try:  # one round trip for all the batches
            tasks_send(WEBHOOK_BATCH_TASK, [[ids[start : start + size]] for start in range(0, len(ids), size)])
        except Exception:  # noqa: BLE001 - the events are committed; the beat job will deliver them
            logger.warning("could not enqueue delivery of %s webhook events; the beat job will", len(ids),
                           exc_info=True)

    transaction.on_commit(enqueue)
