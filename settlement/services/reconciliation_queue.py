"""The reconciliation work queue: exceptions raised by the channel statements and by the bank clearing
reconciliation, resolved by one staff member with a reason or written off under four eyes.

A write-off posts the exception's `adjustment` on its ledger account against the reconciliation-difference
account, in the same transaction as the transition (reference `recon_write_off:<id>`).
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from funding.errors import FourEyesViolation, InvalidState, NotFound, ValidationFailed
from funding.models import BankStatementLine, StatementDirection
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from ledger.models import Account, AccountKind, EntryDirection
from ledger.money import ZERO, money
from ledger.services import account_get_or_create, credit, debit, ledger_post
from settlement.models import (
    UNMATCHED_LEDGER_MOVEMENT,
    UNMATCHED_STATEMENT_LINE,
    AttemptStatus,
    ChannelStatement,
    ExceptionSource,
    ExceptionStatus,
    ReconciliationException,
    ReconClass,
)

SYSTEM_LABEL = "reconciliation"
WRITE_OFF_KIND = "reconciliation.write_off"
# One clearing reconciliation at a time (two imports finishing together would match the same movements).
CLEARING_LOCK_KEY = 0x52435243  # "RCRC"


# --- opening and closing exceptions from the reconciliations ----------------------------------------------

def _channel_key(statement: ChannelStatement, serial: str) -> str:
    return f"channel:{statement.channel.code}:{statement.statement_date.isoformat()}:{serial}"


def _paid(amount: Decimal | None, status: str) -> Decimal:
    return money(amount) if amount is not None and status == AttemptStatus.SUCCEEDED else ZERO


def _system_resolve(exception: ReconciliationException, reason: str) -> None:
    exception.resolve()
    exception.resolved_by_label = SYSTEM_LABEL
    exception.resolved_at = timezone.now()
    exception.resolution_reason = reason
    exception.save(update_fields=["status", "resolved_by_label", "resolved_at", "resolution_reason"])
    audit_record(
        action="reconciliation.exception.resolved",
        obj=exception,
        actor_label=SYSTEM_LABEL,
        before={"status": ExceptionStatus.OPEN},
        after={"status": ExceptionStatus.RESOLVED},
        reason=reason,
    )


def _open(*, key: str, **fields) -> tuple[ReconciliationException, bool]:
    """Open the exception named `key` unless it exists (in any state): a difference is opened once."""
    existing = ReconciliationException.objects.select_for_update().filter(key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return ReconciliationException.objects.create(key=key, **fields), True
    except IntegrityError:
        return ReconciliationException.objects.select_for_update().get(key=key), False


def _refresh(exception: ReconciliationException, figures: dict) -> None:
    """A corrected statement re-imported: the open exception shows the new figures. A write-off proposed
    against the old difference is withdrawn, so a checker never approves an amount the maker did not see."""
    changed = [name for name, value in figures.items() if getattr(exception, name) != value]
    if not changed:
        return
    withdrawn = "adjustment" in changed and exception.write_off_proposed_by_id is not None
    before = {"adjustment": f"{exception.adjustment:.2f}", "classification": exception.classification}
    for name in changed:
        setattr(exception, name, figures[name])
    if withdrawn:
        exception.write_off_proposed_by, exception.write_off_proposed_at, exception.write_off_reason = None, None, ""
        changed += ["write_off_proposed_by", "write_off_proposed_at", "write_off_reason"]
    exception.save(update_fields=changed)
    audit_record(action="reconciliation.exception.refreshed", obj=exception, actor_label="reconciliation",
                 before=before, after={"adjustment": f"{exception.adjustment:.2f}",
                                       "classification": exception.classification,
                                       "write_off_withdrawn": withdrawn})


def reconciliation_exceptions_sync_statement(*, statement: ChannelStatement) -> dict[str, int]:
    """Open an exception for each line of the statement that is not matched; close by the system those of
    this statement that a new import matched or no longer lists. Runs inside the import's transaction."""
    channel = statement.channel
    clearing = account_get_or_create(kind=AccountKind.CHANNEL_CLEARING, owner=channel.code)
    opened = closed = 0
    keys = set()
    for item in statement.items.all().order_by("serial"):
        key = _channel_key(statement, item.serial)
        keys.add(key)
        if item.classification == ReconClass.MATCHED:
            exception = ReconciliationException.objects.select_for_update().filter(
                key=key, status=ExceptionStatus.OPEN
            ).first()
            if exception is not None:
                _system_resolve(exception, "matched by a later import of the statement")
                closed += 1
            continue
        figures = {
            "classification": item.classification,
            "item": item,
            "statement_amount": item.statement_amount,
            "statement_status": item.statement_status,
            "ledger_amount": item.our_amount,
            "our_status": item.our_status,
            "adjustment": _paid(item.our_amount, item.our_status) - _paid(item.statement_amount,
                                                                         item.statement_status),
            "description": f"{channel.code} statement of {statement.statement_date.isoformat()}: "
            f"{item.classification.replace('_', ' ')}",
        }
        exception, created = _open(
            key=key,
            source=ExceptionSource.CHANNEL_STATEMENT,
            channel_code=channel.code,
            value_date=statement.statement_date,
            reference=item.serial,
            ledger_account=clearing,
            **figures,
        )
        if created:
            opened += 1
        elif exception.status == ExceptionStatus.OPEN:
            _refresh(exception, figures)
    prefix = f"channel:{channel.code}:{statement.statement_date.isoformat()}:"
    for exception in ReconciliationException.objects.select_for_update().filter(
        key__startswith=prefix, status=ExceptionStatus.OPEN
    ).exclude(key__in=keys):
        _system_resolve(exception, "no longer in the statement after a later import")
        closed += 1
    return {"opened": opened, "closed": closed}


# --- the bank clearing account: its bank statement against its ledger movements ---------------------------

@dataclass
class ClearingResult:
    dates: list[date]
    matched: int = 0
    opened: int = 0
    closed: int = 0

    def summary(self) -> str:
        return (
            f"clearing reconciliation of {len(self.dates)} value date(s): {self.matched} matched, "
            f"{self.opened} exception(s) opened, {self.closed} closed"
        )


def _clearing_movements(clearing: Account, dates: list[date]) -> list[tuple[int, str, Decimal, str, date]]:
    """Ledger entries on the clearing account by value date: the bank statement line's value date when the
    entry books one, else the journal's business date. Write-offs are the reconciliation's own answer and
    are not matched again."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT e.id, e.direction, e.amount, jt.reference, coalesce(bsl.value_date, jt.business_date) AS vd
              FROM ledger_entry e
              JOIN ledger_journaltransaction jt ON jt.id = e.transaction_id
              LEFT JOIN funding_bankstatementline bsl ON bsl.journal_id = jt.id
             WHERE e.account_id = %s AND jt.kind <> %s
               AND coalesce(bsl.value_date, jt.business_date) = ANY(%s)
             ORDER BY e.id
            """,
            [clearing.pk, WRITE_OFF_KIND, dates],
        )
        return list(cursor.fetchall())


def bank_clearing_reconcile(*, value_dates: list[date] | None = None) -> ClearingResult:
    """Match the bank clearing account's statement lines (BANK_CLEARING_ACCOUNT_NO) with the account's ledger
    movements, one to one, per value date, direction and amount (a C line is money arriving: a ledger debit of
    the asset). A value date is reconciled once a statement line of the clearing account for it is in.

    Unmatched lines and movements open exceptions; open ones that now match are closed by the system.
    Lines or movements already written off are left out (their write-off posted the difference).
    """
    clearing = account_get_or_create(kind=AccountKind.BANK_CLEARING)
    lines_qs = BankStatementLine.objects.filter(account=clearing, journal__isnull=True)
    if value_dates is not None:
        lines_qs = lines_qs.filter(value_date__in=value_dates)
    dates = sorted(set(lines_qs.values_list("value_date", flat=True)))
    result = ClearingResult(dates=dates)
    if not dates:
        return result
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLEARING_LOCK_KEY])
        written_off = set(
            ReconciliationException.objects.filter(
                status=ExceptionStatus.WRITTEN_OFF,
                source__in=[ExceptionSource.BANK_CLEARING_LINE, ExceptionSource.BANK_CLEARING_LEDGER],
            ).values_list("key", flat=True)
        )
        lines = [
            line for line in BankStatementLine.objects.filter(
                account=clearing, journal__isnull=True, value_date__in=dates
            ).order_by("id")
            if f"bank_line:{line.reference}" not in written_off
        ]
        movements = [m for m in _clearing_movements(clearing, dates) if f"ledger_entry:{m[0]}" not in written_off]
        pool: dict[tuple[date, str, Decimal], list] = {}
        for movement in movements:
            entry_id, direction, amount, reference, value_date = movement
            pool.setdefault((value_date, direction, money(amount)), []).append(movement)
        matched_keys, unmatched_lines = [], []
        for line in lines:
            side = EntryDirection.DEBIT if line.direction == StatementDirection.CREDIT else EntryDirection.CREDIT
            candidates = pool.get((line.value_date, side, money(line.amount)))
            if candidates:
                movement = candidates.pop(0)
                matched_keys += [f"bank_line:{line.reference}", f"ledger_entry:{movement[0]}"]
                result.matched += 1
            else:
                unmatched_lines.append(line)
        for line in unmatched_lines:
            signed = line.amount if line.direction == StatementDirection.CREDIT else -line.amount
            _, created = _open(
                key=f"bank_line:{line.reference}",
                source=ExceptionSource.BANK_CLEARING_LINE,
                classification=UNMATCHED_STATEMENT_LINE,
                bank_line=line,
                value_date=line.value_date,
                reference=line.reference,
                statement_amount=line.amount,
                statement_status=line.direction,
                ledger_account=clearing,
                adjustment=money(signed),
                description=f"clearing statement line {line.direction} {line.amount} "
                f"({line.counterparty or 'no counterparty'}) has no ledger movement",
            )
            result.opened += created
        for remaining in pool.values():
            for entry_id, direction, amount, reference, value_date in remaining:
                signed = -amount if direction == EntryDirection.DEBIT else amount
                _, created = _open(
                    key=f"ledger_entry:{entry_id}",
                    source=ExceptionSource.BANK_CLEARING_LEDGER,
                    classification=UNMATCHED_LEDGER_MOVEMENT,
                    entry_id=entry_id,
                    value_date=value_date,
                    reference=reference,
                    ledger_amount=amount,
                    our_status=direction,
                    ledger_account=clearing,
                    adjustment=money(signed),
                    description=f"ledger movement {direction} {amount} on the clearing account is not in "
                    "the bank's statement",
                )
                result.opened += created
        for exception in ReconciliationException.objects.select_for_update().filter(
            key__in=matched_keys, status=ExceptionStatus.OPEN
        ):
            _system_resolve(exception, "matched by the clearing reconciliation")
            result.closed += 1
    return result


# --- staff work the queue --------------------------------------------------------------------------------

def _locked(exception_id: int) -> ReconciliationException:
    exception = ReconciliationException.objects.select_for_update().filter(pk=exception_id).first()
    if exception is None:
        raise NotFound()
    return exception


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    return reason


def reconciliation_exception_resolve(
    *, exception_id: int, actor: AbstractBaseUser, reason: str
) -> ReconciliationException:
    """One staff member closes an open exception with the reason it needs no money (explained, corrected
    elsewhere). A pending write-off proposal stays on record and can no longer be approved."""
    reason = _reason(reason)
    with transaction.atomic():
        exception = _locked(exception_id)
        if exception.status != ExceptionStatus.OPEN:
            raise InvalidState(f"The exception is {exception.status}; only an open one can be resolved.")
        exception.resolve()
        exception.resolved_by = actor
        exception.resolved_by_label = actor.get_username()
        exception.resolved_at = timezone.now()
        exception.resolution_reason = reason
        exception.save(
            update_fields=["status", "resolved_by", "resolved_by_label", "resolved_at", "resolution_reason"]
        )
        audit_record(
            action="reconciliation.exception.resolved",
            obj=exception,
            actor=actor,
            before={"status": ExceptionStatus.OPEN},
            after={"status": ExceptionStatus.RESOLVED},
            reason=reason,
        )
    return exception


def reconciliation_exception_write_off_propose(
    *, exception_id: int, maker: AbstractBaseUser, reason: str
) -> ReconciliationException:
    """The maker proposes writing the difference off; a different staff member approves it."""
    reason = _reason(reason)
    with transaction.atomic():
        exception = _locked(exception_id)
        if exception.status != ExceptionStatus.OPEN:
            raise InvalidState(f"The exception is {exception.status}; only an open one can be written off.")
        if exception.write_off_proposed_by_id is not None:
            raise InvalidState("A write-off of this exception is already proposed.")
        exception.write_off_proposed_by = maker
        exception.write_off_proposed_at = timezone.now()
        exception.write_off_reason = reason
        exception.save(update_fields=["write_off_proposed_by", "write_off_proposed_at", "write_off_reason"])
        audit_record(
            action="reconciliation.exception.write_off_proposed",
            obj=exception,
            actor=maker,
            after={"adjustment": f"{exception.adjustment:.2f}"},
            reason=reason,
        )
    return exception


def reconciliation_exception_write_off_reject(
    *, exception_id: int, checker: AbstractBaseUser, reason: str
) -> ReconciliationException:
    """The checker disagrees: the proposal is dropped and the exception stays open."""
    reason = _reason(reason)
    with transaction.atomic():
        exception = _locked(exception_id)
        if exception.status != ExceptionStatus.OPEN or exception.write_off_proposed_by_id is None:
            raise InvalidState("Only a proposed write-off can be rejected.")
        if exception.write_off_proposed_by_id == checker.pk:
            raise FourEyesViolation()
        before = {"maker": exception.write_off_proposed_by.get_username(), "reason": exception.write_off_reason}
        exception.write_off_proposed_by = None
        exception.write_off_proposed_at = None
        exception.write_off_reason = ""
        exception.save(update_fields=["write_off_proposed_by", "write_off_proposed_at", "write_off_reason"])
        audit_record(
            action="reconciliation.exception.write_off_rejected",
            obj=exception,
            actor=checker,
            before=before,
            reason=reason,
        )
    return exception


def reconciliation_exception_write_off_approve(
    *, exception_id: int, checker: AbstractBaseUser, reason: str = ""
) -> ReconciliationException:
    """A second staff member approves the proposal: the exception is written off and, for a money difference,
    its adjustment is posted against the reconciliation-difference account in the same transaction."""
    with transaction.atomic():
        exception = _locked(exception_id)
        if exception.status != ExceptionStatus.OPEN or exception.write_off_proposed_by_id is None:
            raise InvalidState("Only a proposed write-off can be approved.")
        if exception.write_off_proposed_by_id == checker.pk:
            raise FourEyesViolation()
        journal = None
        adjustment = money(exception.adjustment)
        if adjustment != ZERO:
            account = exception.ledger_account
            difference = account_get_or_create(kind=AccountKind.RECONCILIATION_DIFFERENCE, currency=account.currency)
            amount = abs(adjustment)
            legs = (
                [debit(account, amount), credit(difference, amount)]
                if adjustment > 0
                else [debit(difference, amount), credit(account, amount)]
            )
            journal = ledger_post(
                kind=WRITE_OFF_KIND,
                reference=f"recon_write_off:{exception.pk}",
                business_date=business_date_current(),
                description=f"write-off of {exception.reference} ({exception.classification})",
                legs=legs,
            )
        exception.write_off()
        exception.written_off_by = checker
        exception.written_off_at = timezone.now()
        exception.write_off_journal = journal
        exception.save(update_fields=["status", "written_off_by", "written_off_at", "write_off_journal"])
        audit_record(
            action="reconciliation.exception.written_off",
            obj=exception,
            actor=checker,
            before={"status": ExceptionStatus.OPEN},
            after={
                "status": ExceptionStatus.WRITTEN_OFF,
                "maker": exception.write_off_proposed_by.get_username(),
                "adjustment": f"{adjustment:.2f}",
                "journal": journal.reference if journal else None,
            },
            reason=reason or exception.write_off_reason,
        )
    return exception

