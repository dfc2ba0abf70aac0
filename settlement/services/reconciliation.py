"""Channel statement reconciliation: import, match by serial, classify, resolve unknown attempts from it."""

import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from funding.errors import InvalidState, ValidationFailed
from funding.models import PayoutStatus
from ledger.money import MAX_AMOUNT, money
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
    ReturnSource,
    StatementSource,
)
from settlement.services.reconciliation_queue import reconciliation_exceptions_sync_statement

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["serial", "amount", "status"]
STATEMENT_STATUSES = ("succeeded", "failed", "returned")
# Digits with at most 2 decimals, as the contract writes amounts: no sign, exponent, NaN or grouping.
AMOUNT_TEXT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")


def statement_rows_from_csv(*, text: str) -> list[StatementRow]:
    """Parse an uploaded statement (header serial,amount,status[,code]; contract 2.2); any bad line refuses the
    file, each named by its line number. `status` is succeeded, failed or returned; a serial appears once."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    raws: list[dict] = []
    try:
        fieldnames = reader.fieldnames or []
        for raw in reader:
            raws.append(raw)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit: a clear refusal, not a trace
        raise ValidationFailed(details={f"line {len(raws) + 2}": [f"not CSV: {exc}"]}) from exc
    missing = [c for c in CSV_COLUMNS if c not in fieldnames]
    if missing:
        raise ValidationFailed(details={"file": [f"Missing column(s): {', '.join(missing)}."]})
    rows, errors, seen = [], {}, {}
    for line_no, raw in enumerate(raws, start=2):
        if None in raw or any(value is None for value in raw.values()):
            errors[f"line {line_no}"] = ["wrong number of fields"]
            continue
        serial = (raw.get("serial") or "").strip()
        status = (raw.get("status") or "").strip().lower()
        code = (raw.get("code") or "").strip()
        text = (raw.get("amount") or "").strip()
        amount = Decimal(text) if AMOUNT_TEXT.fullmatch(text) else None
        problems = []
        if not serial or len(serial) > 64 or "\x00" in serial:
            problems.append("serial must be 1 to 64 characters")
        elif serial in seen:
            problems.append(f"serial {serial} already on line {seen[serial]}")
        if amount is None or amount <= 0 or amount > MAX_AMOUNT:
            problems.append("amount must be a positive amount with at most 2 decimals")
        if status not in STATEMENT_STATUSES:
            problems.append("status must be succeeded, failed or returned")
        if len(code) > 64 or "\x00" in code:
            problems.append("code must be at most 64 characters")
        if problems:
            errors[f"line {line_no}"] = problems
            continue
        seen[serial] = line_no
        rows.append(StatementRow(serial=serial, amount=money(amount), status=status, code=code, line=line_no))
    if errors:
        raise ValidationFailed(details=errors)
    return rows


def _attempts_of_day(channel: Channel, statement_date: date):
    return PayoutAttempt.objects.filter(channel=channel, created_at__date=statement_date)


@dataclass
class StatementImportResult:
    """What one import did: counts of the file's lines, and of what this run changed."""

    statement: ChannelStatement
    lines: int = 0
    matched: int = 0  # lines that agree with the engine (after resolving and booking returns)
    resolved: int = 0  # unknown or processing attempts this run resolved
    returned: int = 0  # returns of succeeded payouts this run booked
    returned_amount: Decimal = Decimal("0.00")
    exceptions: int = 0  # the statement's items that are not matched (lines and our attempts missing from it)

    def as_dict(self) -> dict:
        return {
            "channel": self.statement.channel.code,
            "date": self.statement.statement_date.isoformat(),
            "lines": self.lines,
            "matched": self.matched,
            "resolved": self.resolved,
            "returned": self.returned,
            "returned_amount": f"{self.returned_amount:.2f}",
            "exceptions": self.exceptions,
        }


def statement_import(
    *,
    channel: Channel,
    statement_date: date,
    rows: list[StatementRow],
    source: str = StatementSource.ADAPTER,
    actor_label: str = "reconciliation",
) -> ChannelStatement:
    """Store and reconcile one statement. Importing the same day again refreshes it; nothing is doubled."""
    return statement_reconcile(
        channel=channel, statement_date=statement_date, rows=rows, source=source, actor_label=actor_label
    ).statement


def statement_reconcile(
    *,
    channel: Channel,
    statement_date: date,
    rows: list[StatementRow],
    source: str = StatementSource.ADAPTER,
    actor_label: str = "reconciliation",
) -> StatementImportResult:
    """Store and reconcile one statement (contract 2.2); see statement_import.

    A `succeeded` or `failed` line resolves a live (processing or unknown) attempt of this channel with its
    serial and amount; a `returned` line books the return of the succeeded payout of its attempt
    (settlement.services.returns, at most once per payout). Every line is then classified against what the
    engine holds; the lines that match nothing or disagree are the exceptions for staff.
    """
    from settlement.services.disbursement import advance_try_finish, attempt_apply
    from settlement.services.returns import payout_return_book

    by_serial = {row.serial: row for row in rows}
    attempts = {a.serial: a for a in PayoutAttempt.objects.filter(serial__in=by_serial)}
    with transaction.atomic():
        statement, created = ChannelStatement.objects.get_or_create(
            channel=channel,
            statement_date=statement_date,
            defaults={"source": source, "imported_by": actor_label, "row_count": len(rows)},
        )
    result = StatementImportResult(statement=statement, lines=len(rows))
    # First let the statement settle live attempts it proves (each in its own transaction, like a query).
    resolved, returned = set(), set()
    for serial, row in by_serial.items():
        attempt = attempts.get(serial)
        if attempt is None or attempt.channel_id != channel.pk or money(row.amount) != attempt.amount:
            continue
        if row.status in ("succeeded", "failed") and attempt.status in (
            AttemptStatus.PROCESSING,
            AttemptStatus.UNKNOWN,
        ):
            applied = attempt_apply(attempt_id=attempt.pk, status=row.status, code=row.code, source="statement")
            if applied.changed:
                resolved.add(serial)
            if applied.final:
                advance_try_finish(advance_id=applied.advance_id)
        elif row.status == "returned" and attempt.status == AttemptStatus.SUCCEEDED:
            try:
                booked = payout_return_book(
                    payout_id=attempt.payout_id,
                    source=ReturnSource.STATEMENT,
                    actor_label=actor_label,
                    statement=statement,
                )
            except InvalidState:
                continue  # the payout is not succeeded: classified as a status mismatch below
            if booked.created:
                returned.add(serial)
                result.returned_amount += booked.payout_return.amount
    result.resolved, result.returned = len(resolved), len(returned)
    attempts = {
        a.serial: a for a in PayoutAttempt.objects.filter(serial__in=by_serial).select_related("payout")
    }
    with transaction.atomic():
        statement = ChannelStatement.objects.select_for_update().get(pk=statement.pk)
        if not created and (statement.source, statement.row_count) != (source, len(rows)):
            statement.source = source
            statement.imported_by = actor_label
            statement.row_count = len(rows)
            statement.save(update_fields=["source", "imported_by", "row_count", "imported_at"])
        for serial, row in by_serial.items():
            attempt = attempts.get(serial)
            classification = _classify(channel, row, attempt)
            if classification == ReconClass.MISSING_ON_OUR_SIDE:
                attempt = None
            if classification == ReconClass.MATCHED:
                result.matched += 1
            _item_upsert(
                statement,
                serial,
                attempt=attempt,
                row=row,
                classification=classification,
                resolved=serial in resolved,
                booked_return=serial in returned,
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
        result.exceptions = statement.items.exclude(classification=ReconClass.MATCHED).count()
    return result


def _classify(channel: Channel, row: StatementRow, attempt: PayoutAttempt | None) -> str:
    if attempt is None or attempt.channel_id != channel.pk:
        return ReconClass.MISSING_ON_OUR_SIDE
    if money(row.amount) != attempt.amount:
        return ReconClass.AMOUNT_MISMATCH
    if row.status == "returned":
        # Matched once the payout is returned (by this line, an earlier import or staff).
        returned = attempt.status == AttemptStatus.SUCCEEDED and attempt.payout.status == PayoutStatus.RETURNED
        return ReconClass.MATCHED if returned else ReconClass.STATUS_MISMATCH
    if row.status != attempt.status:
        return ReconClass.STATUS_MISMATCH
    return ReconClass.MATCHED


def _item_upsert(statement, serial, *, attempt, row, classification, resolved, booked_return=False) -> None:
    item = ReconciliationItem.objects.filter(
        statement=statement, serial=serial
    ).first() or ReconciliationItem(statement=statement, serial=serial)
    values = {
        "attempt_id": attempt.pk if attempt else None,
        "statement_amount": money(row.amount) if row else None,
        "statement_status": row.status if row else "",
        "statement_code": row.code if row else "",
        "our_amount": attempt.amount if attempt else None,
        "our_status": attempt.status if attempt else "",
        "classification": classification,
        "resolved_attempt": item.resolved_attempt or resolved,
        "booked_return": item.booked_return or booked_return,
    }
    if item.pk is not None and all(getattr(item, name) == value for name, value in values.items()):
        return  # the same line imported again: nothing changes
    for name, value in values.items():
        setattr(item, name, value)
    item.save()


# The largest channel statement file accepted (command and console upload alike).
STATEMENT_MAX_BYTES = 64 * 1024 * 1024


def channel_statement_file_import(
    *, channel_code: str, statement_date: date, data: bytes, actor_label: str
) -> StatementImportResult:
    """`import_channel_statement CHANNEL DATE FILE` (contract 2.2): a channel's statement file for one value
    date. The whole file is refused (ValidationFailed, each bad line named by number, nothing imported) if a
    line is malformed or refers to another channel's transfer (an attempt of that serial sent through another
    channel). Importing the same file again changes nothing: attempts resolve once, a payout is returned once
    (unique), and each line is one item per statement and serial (unique)."""
    channel = Channel.objects.filter(code=channel_code).first()
    if channel is None:
        raise ValidationFailed(details={"channel": [f"Unknown channel {channel_code!r}."]})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(details={"file": [f"Not UTF-8 (byte {exc.start})."]}) from exc
    if "\x00" in text:
        raise ValidationFailed(details={"file": ["The file contains NUL bytes."]})
    rows = statement_rows_from_csv(text=text)
    others = dict(
        PayoutAttempt.objects.filter(serial__in=[r.serial for r in rows])
        .exclude(channel=channel)
        .values_list("serial", "channel__code")
    )
    if others:
        raise ValidationFailed(
            details={
                f"line {row.line}": [f"serial {row.serial} was sent through {others[row.serial]}, not {channel.code}"]
                for row in rows
                if row.serial in others
            }
        )
    return statement_reconcile(
        channel=channel,
        statement_date=statement_date,
        rows=rows,
        source=StatementSource.CSV,
        actor_label=actor_label,
    )


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
