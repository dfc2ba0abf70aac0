"""Channel statement reconciliation: import, match by serial, classify, resolve unknown attempts from it."""

import csv
import io
import logging
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from funding.errors import ValidationFailed
from ledger.money import money
from settlement.adapters.base import StatementRow, adapter_for
from settlement.models import (
    AttemptStatus,
    Channel,
    ChannelStatement,
    ExceptionSource,
    ExceptionStatus,
    PayoutAttempt,
    ReconciliationException,
    ReconciliationItem,
    ReconClass,
    StatementSource,
)
from settlement.services.reconciliation_queue import reconciliation_exceptions_sync_statement

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["serial", "amount", "status"]


def statement_rows_from_csv(*, text: str) -> list[StatementRow]:
    """Parse an uploaded statement (header serial,amount,status[,code]); any bad line refuses the file."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationFailed(details={"file": [f"Missing column(s): {', '.join(missing)}."]})
    rows, errors = [], {}
    for line_no, raw in enumerate(reader, start=2):
        serial = (raw.get("serial") or "").strip()
        status = (raw.get("status") or "").strip().lower()
        try:
            amount = Decimal((raw.get("amount") or "").strip())
        except InvalidOperation:
            amount = None
        problems = []
        if not serial:
            problems.append("serial is empty")
        if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            problems.append("amount must be a positive amount with at most 2 decimals")
        if status not in ("succeeded", "failed"):
            problems.append("status must be succeeded or failed")
        if problems:
            errors[f"line {line_no}"] = problems
            continue
        rows.append(
            StatementRow(
                serial=serial, amount=money(amount), status=status, code=(raw.get("code") or "").strip()
            )
        )
    if errors:
        raise ValidationFailed(details=errors)
    return rows


def _attempts_of_day(channel: Channel, statement_date: date):
    return PayoutAttempt.objects.filter(channel=channel, created_at__date=statement_date)


def statement_import(
    *,
    channel: Channel,
    statement_date: date,
    rows: list[StatementRow],
    source: str = StatementSource.ADAPTER,
    actor_label: str = "reconciliation",
) -> ChannelStatement:
    """Store and reconcile one statement. Importing the same day again refreshes it; nothing is doubled."""
    from settlement.services.disbursement import advance_try_finish, attempt_apply

    by_serial = {row.serial: row for row in rows}
    attempts = {a.serial: a for a in PayoutAttempt.objects.filter(serial__in=by_serial)}
    # First let the statement settle live attempts it proves (each in its own transaction, like a query).
    resolved = set()
    for serial, row in by_serial.items():
        attempt = attempts.get(serial)
        if (
            attempt is not None
            and attempt.channel_id == channel.pk
            and attempt.status in (AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN)
            and money(row.amount) == attempt.amount
        ):
            applied = attempt_apply(
                attempt_id=attempt.pk, status=row.status, code=row.code, source="statement"
            )
            if applied.changed:
                resolved.add(serial)
            if applied.final:
                advance_try_finish(advance_id=applied.advance_id)
    attempts = {a.serial: a for a in PayoutAttempt.objects.filter(serial__in=by_serial)}
    with transaction.atomic():
        statement, _ = ChannelStatement.objects.get_or_create(
            channel=channel, statement_date=statement_date, defaults={"source": source}
        )
        statement.source = source
        statement.imported_by = actor_label
        statement.row_count = len(rows)
        statement.save(update_fields=["source", "imported_by", "row_count", "imported_at"])
        for serial, row in by_serial.items():
            attempt = attempts.get(serial)
            if attempt is None or attempt.channel_id != channel.pk:
                attempt, classification = None, ReconClass.MISSING_ON_OUR_SIDE
            elif money(row.amount) != attempt.amount:
                classification = ReconClass.AMOUNT_MISMATCH
            elif row.status != attempt.status:
                classification = ReconClass.STATUS_MISMATCH
            else:
                classification = ReconClass.MATCHED
            _item_upsert(
                statement,
                serial,
                attempt=attempt,
                row=row,
                classification=classification,
                resolved=serial in resolved,
            )
        listed = set(by_serial)
        for attempt in _attempts_of_day(channel, statement_date).exclude(status=AttemptStatus.FAILED):
            if attempt.serial not in listed:
                _item_upsert(
                    statement,
                    attempt.serial,
                    attempt=attempt,
                    row=None,
                    classification=ReconClass.MISSING_IN_STATEMENT,
                    resolved=False,
                )
        # Lines from an earlier import of this day that the new file no longer explains.
        statement.items.exclude(serial__in=listed).exclude(
            classification=ReconClass.MISSING_IN_STATEMENT
        ).delete()
        # What is not matched is an exception in the staff work queue (opened once, closed when matched).
        reconciliation_exceptions_sync_statement(statement=statement)
    return statement


def _item_upsert(statement, serial, *, attempt, row, classification, resolved) -> None:
    item = ReconciliationItem.objects.filter(
        statement=statement, serial=serial
    ).first() or ReconciliationItem(statement=statement, serial=serial)
    item.attempt = attempt
    item.statement_amount = money(row.amount) if row else None
    item.statement_status = row.status if row else ""
    item.statement_code = row.code if row else ""
    item.our_amount = attempt.amount if attempt else None
    item.our_status = attempt.status if attempt else ""
    item.classification = classification
    item.resolved_attempt = item.resolved_attempt or resolved
    item.save()


def statement_fetch_and_import(*, channel: Channel, statement_date: date) -> ChannelStatement:
    """Outside any transaction: the adapter may call the channel."""
    rows = adapter_for(channel).statement(statement_date)
    return statement_import(
        channel=channel, statement_date=statement_date, rows=rows, source=StatementSource.ADAPTER
    )


def statements_import_all(*, statement_date: date | None = None) -> int:
    """Import every enabled channel's statement for the day (default yesterday). One failing channel does
    not stop the others."""
    statement_date = statement_date or timezone.localdate() - timedelta(days=1)
    done = 0
    for channel in Channel.objects.filter(enabled=True):
        try:
            statement_fetch_and_import(channel=channel, statement_date=statement_date)
            done += 1
        except Exception:  # noqa: BLE001 - reported, retried by the next run
            logger.exception("statement import of %s for %s failed", channel.code, statement_date)
    return done


def reconciliation_report(*, statement_date: date) -> dict:
    """The daily report: per channel, the count of each classification; the exceptions still open in the work
    queue, and those already resolved or written off."""
    counts = (
        ReconciliationItem.objects.filter(statement__statement_date=statement_date)
        .values("statement__channel__code", "classification")
        .annotate(n=Count("id"))
        .order_by("statement__channel__code", "classification")
    )
    per_channel: dict[str, dict[str, int]] = {}
    for row in counts:
        per_channel.setdefault(row["statement__channel__code"], {})[row["classification"]] = row["n"]
    queue = dict(
        ReconciliationException.objects.filter(
            source=ExceptionSource.CHANNEL_STATEMENT, value_date=statement_date
        ).values_list("key", "status")
    )
    lines = [
        {
            "channel": item.statement.channel.code,
            "serial": item.serial,
            "classification": item.classification,
            "statement_amount": None if item.statement_amount is None else f"{item.statement_amount:.2f}",
            "our_amount": None if item.our_amount is None else f"{item.our_amount:.2f}",
            "statement_status": item.statement_status,
            "our_status": item.our_status,
            # Where the exception stands in the staff work queue (open, resolved, written_off).
            "status": queue.get(
                f"channel:{item.statement.channel.code}:{statement_date.isoformat()}:{item.serial}", ""
            ),
        }
        for item in ReconciliationItem.objects.filter(statement__statement_date=statement_date)
        .exclude(classification=ReconClass.MATCHED)
        .select_related("statement__channel")
        .order_by("statement__channel__code", "serial")
    ]
    # `exceptions` are those still to work (open in the queue); resolved and written-off ones are history.
    exceptions = [e for e in lines if e["status"] in (ExceptionStatus.OPEN, "")]
    return {
        "date": statement_date.isoformat(),
        "channels": per_channel,
        "exceptions": exceptions,
        "open_exceptions": len(exceptions),
        "closed_exceptions": [e for e in lines if e["status"] not in (ExceptionStatus.OPEN, "")],
    }
