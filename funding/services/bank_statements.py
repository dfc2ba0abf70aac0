"""Bank statement import (contract 2.1): each movement on a company's settlement or margin account becomes a
ledger posting against the bank's clearing account. A movement on the bank clearing account itself
(settings.BANK_CLEARING_ACCOUNT_NO) is recorded without a posting, for the clearing reconciliation.

Each line is its own transaction: its posting and its BankStatementLine (unique reference) commit together,
so a process that dies mid-file leaves every line either fully imported or not at all, and importing the file
again skips what is already in. A bad line is reported with its line number and does not stop the others.
"""

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from funding.models import BankStatementImport, BankStatementLine, StatementDirection
from funding.services.calendar import business_date_current
from funding.signals import bank_statement_imported
from ledger.models import Account, AccountKind
from ledger.money import MAX_AMOUNT, money
from ledger.services import account_get_or_create, credit, debit, ledger_post

COLUMNS = ["value_date", "account_no", "direction", "amount", "reference", "counterparty", "memo"]
REQUIRED = ["value_date", "account_no", "direction", "amount", "reference"]
STATEMENT_ACCOUNT_KINDS = [AccountKind.SETTLEMENT, AccountKind.MARGIN]
logger = logging.getLogger(__name__)


class StatementFileError(Exception):
    """The file as a whole cannot be read (encoding, header)."""


class LineRejected(Exception):
    pass


@dataclass
class ParsedLine:
    line_no: int
    value_date: date
    account_no: str
    direction: str
    amount: Decimal
    reference: str
    counterparty: str
    memo: str


@dataclass
class ImportResult:
    statement: BankStatementImport
    rejections: list[dict] = field(default_factory=list)
    # One-line summaries of what the receivers of bank_statement_imported did (the clearing reconciliation).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejections


def _parse(line_no: int, row: dict) -> ParsedLine:
    problems = [name for name in REQUIRED if not (row.get(name) or "").strip()]
    if problems:
        raise LineRejected(f"missing {', '.join(problems)}")
    try:
        value_date = date.fromisoformat(row["value_date"].strip())
    except ValueError as exc:
        raise LineRejected(f"value_date {row['value_date']!r} is not a date (YYYY-MM-DD)") from exc
    direction = row["direction"].strip().upper()
    if direction not in (StatementDirection.CREDIT, StatementDirection.DEBIT):
        raise LineRejected(f"direction {row['direction']!r} is not C or D")
    raw = row["amount"].strip()
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:
        raise LineRejected(f"amount {raw!r} is not a number") from exc
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or money(amount) != amount:
        raise LineRejected(f"amount {raw!r} must be positive with at most 2 decimals")
    reference = row["reference"].strip()
    if len(reference) > 64:
        raise LineRejected("reference is longer than 64 characters")
    return ParsedLine(
        line_no=line_no,
        value_date=value_date,
        account_no=row["account_no"].strip(),
        direction=direction,
        amount=money(amount),
        reference=reference,
        counterparty=(row.get("counterparty") or "").strip()[:200],
        memo=(row.get("memo") or "").strip()[:255],
    )


def _same(existing: BankStatementLine, line: ParsedLine) -> bool:
    return (existing.value_date, existing.account_no, existing.direction, existing.amount) == (
        line.value_date,
        line.account_no,
        line.direction,
        line.amount,
    )


def _import_line(
    *, statement: BankStatementImport, line: ParsedLine, clearing: Account, business_date: date
) -> bool:
    """Post one line. True if imported, False if it was already imported (same reference, same movement)."""
    existing = BankStatementLine.objects.filter(reference=line.reference).first()
    if existing is not None:
        if _same(existing, line):
            return False
        raise LineRejected(f"reference {line.reference} was already imported with different details")
    if settings.BANK_CLEARING_ACCOUNT_NO and line.account_no == settings.BANK_CLEARING_ACCOUNT_NO:
        return _record_clearing_line(statement=statement, line=line, clearing=clearing)
    account = Account.objects.filter(
        external_account_no=line.account_no, kind__in=STATEMENT_ACCOUNT_KINDS
    ).first()
    if account is None:
        raise LineRejected(f"account {line.account_no} is not a company settlement or margin account")
    if line.direction == StatementDirection.CREDIT:
        legs = [debit(clearing, line.amount), credit(account, line.amount)]
    else:
        legs = [debit(account, line.amount), credit(clearing, line.amount)]
    try:
        with transaction.atomic():
            journal = ledger_post(
                kind=f"bank_statement.{'credit' if line.direction == 'C' else 'debit'}",
                reference=f"stmt:{line.reference}",
                business_date=business_date,
                description=f"{line.counterparty} {line.memo}".strip(),
                legs=legs,
            )
            BankStatementLine.objects.create(
                statement=statement,
                line_no=line.line_no,
                reference=line.reference,
                value_date=line.value_date,
                account_no=line.account_no,
                account=account,
                direction=line.direction,
                amount=line.amount,
                counterparty=line.counterparty,
                memo=line.memo,
                journal=journal,
            )
    except IntegrityError as exc:
        if "ledger_account_no_overdraft" in str(exc):
            raise LineRejected(f"debit of {line.amount} would overdraw account {line.account_no}") from exc
        if BankStatementLine.objects.filter(reference=line.reference).exists():
            return False  # imported concurrently by another run
        raise
    return True


def _record_clearing_line(*, statement: BankStatementImport, line: ParsedLine, clearing: Account) -> bool:
    """A movement on the bank's own clearing account is not booked (the ledger books the other side of each
    company's movement there already): it is recorded, and settlement's clearing reconciliation matches it
    against the clearing account's ledger movements."""
    try:
        with transaction.atomic():
            BankStatementLine.objects.create(
                statement=statement,
                line_no=line.line_no,
                reference=line.reference,
                value_date=line.value_date,
                account_no=line.account_no,
                account=clearing,
                direction=line.direction,
                amount=line.amount,
                counterparty=line.counterparty,
                memo=line.memo,
                journal=None,
            )
    except IntegrityError:
        if BankStatementLine.objects.filter(reference=line.reference).exists():
            return False  # imported concurrently by another run
        raise
    return True


def bank_statement_import(*, stream: IO[bytes], filename: str, imported_by: str) -> ImportResult:
    """Import a statement file. Raises StatementFileError if the file cannot be read at all."""
    raw = stream.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementFileError("the file is not UTF-8") from exc
    reader = csv.DictReader(text.splitlines())
    header = [(name or "").strip() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise StatementFileError(f"the header lacks {', '.join(missing)} (expected {','.join(COLUMNS)})")
    reader.fieldnames = header
    business_date = business_date_current()
    clearing = account_get_or_create(kind=AccountKind.BANK_CLEARING)
    statement = BankStatementImport.objects.create(
        filename=filename[:255], sha256=hashlib.sha256(raw).hexdigest(), imported_by=imported_by[:150]
    )
    result = ImportResult(statement=statement)
    credits = debits = Decimal("0.00")
    imported = skipped = total = 0
    value_dates: set[date] = set()
    for row in reader:
        line_no = reader.line_num  # the physical line in the file, the header being line 1
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        total += 1
        try:
            if None in row:
                raise LineRejected("more fields than the header")
            line = _parse(line_no, row)
            if _import_line(statement=statement, line=line, clearing=clearing, business_date=business_date):
                imported += 1
                value_dates.add(line.value_date)
                if line.direction == StatementDirection.CREDIT:
                    credits += line.amount
                else:
                    debits += line.amount
            else:
                skipped += 1
        except LineRejected as exc:
            result.rejections.append(
                {"line": line_no, "reference": (row.get("reference") or "").strip(), "error": str(exc)}
            )
    statement.lines_total = total
    statement.lines_imported = imported
    statement.lines_skipped = skipped
    statement.lines_rejected = len(result.rejections)
    statement.credits_total = credits
    statement.debits_total = debits
    statement.rejections = result.rejections
    statement.finished_at = timezone.now()
    statement.save()
    for receiver, response in bank_statement_imported.send_robust(
        sender=BankStatementImport, statement=statement, value_dates=sorted(value_dates)
    ):
        if isinstance(response, Exception):
            logger.error("after the import of %s, %s failed", statement, receiver, exc_info=response)
            result.notes.append(f"{getattr(receiver, '__name__', receiver)} failed: {response}")
        elif isinstance(response, str) and response:
            result.notes.append(response)
    return result


def import_as_json(result: ImportResult) -> dict:
    s = result.statement
    return {
        "file": s.filename,
        "imported": s.lines_imported,
        "credits_total": f"{s.credits_total:.2f}",
        "debits_total": f"{s.debits_total:.2f}",
        "already_imported": s.lines_skipped,
        "rejected": s.lines_rejected,
        "rejections": [{"line": r["line"], "error": r["error"]} for r in result.rejections],
        "notes": list(result.notes),
    }


def import_summary(result: ImportResult) -> str:
    s = result.statement
    return (
        f"import_bank_statement {s.filename}: {s.lines_imported} imported (credits {s.credits_total}, "
        f"debits {s.debits_total}), {s.lines_skipped} already imported, {s.lines_rejected} rejected"
    ) + "".join(f"; {note}" for note in result.notes)
