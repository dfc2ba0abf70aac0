"""Credit-line webhook events: the line's version bumped and the event written in the caller's transaction."""

from django.db.models import F

from funding.models import CreditLine
from funding.selectors import credit_line_view
from funding.services.events import event_emit


def credit_line_emit_event(*, line: CreditLine, type: str, extra: dict | None = None) -> None:
    """Bump the line's version and write the event, inside the caller's transaction.

    The data is the credit line as GET /api/v1/credit-line renders it at the time of the event, plus `extra`
    (e.g. {"threshold": "0.80"} of credit_line.threshold_reached).
    """
    CreditLine.objects.filter(pk=line.pk).update(version=F("version") + 1)
    line.refresh_from_db(fields=["version"])
    event_emit(company=line.company, type=type, resource_type="credit_line", resource_id=str(line.pk),
               version=line.version, data={**credit_line_view(company=line.company), **(extra or {})})
