"""Reads of settlement for the console, the admin and the metrics."""

from django.db.models import QuerySet

from settlement.models import ExceptionStatus, IntegrityCheckRun, ReconciliationException


def reconciliation_exceptions_open() -> QuerySet[ReconciliationException]:
    """The work queue: open exceptions only (resolved and written-off ones are history), oldest first."""
    return (
        ReconciliationException.objects.filter(status=ExceptionStatus.OPEN)
        .select_related("write_off_proposed_by", "ledger_account")
        .order_by("opened_at", "id")
    )


def reconciliation_exceptions_open_count() -> int:
    return ReconciliationException.objects.filter(status=ExceptionStatus.OPEN).count()


def integrity_check_latest() -> IntegrityCheckRun | None:
    return IntegrityCheckRun.objects.order_by("-finished_at", "-id").first()
