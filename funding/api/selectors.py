"""Reads for the API: the caller's credit line as of now, its advances and its events."""

from typing import Any

from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from funding.models import Advance, Company, WebhookEvent
from funding.selectors import credit_line_view

__all__ = ["advance_list", "credit_line_view"]


def advance_list(*, company: Company, filters: dict[str, Any]) -> QuerySet[Advance]:
    qs = Advance.objects.filter(company=company).prefetch_related("payouts__attempt_views")
    if "status" in filters:
        qs = qs.filter(status=filters["status"])
    if "business_date" in filters:
        qs = qs.filter(business_date=filters["business_date"])
    if "external_id" in filters:
        qs = qs.filter(external_id=filters["external_id"])
    if "created_after" in filters:
        qs = qs.filter(created_at__gte=filters["created_after"])
    if "created_before" in filters:
        qs = qs.filter(created_at__lt=filters["created_before"])
    return qs


def advance_get(*, company: Company, public_id: str) -> Advance | None:
    return (
        Advance.objects.filter(company=company, public_id=public_id)
        .prefetch_related("payouts__attempt_views")
        .first()
    )


def advance_payouts(advance: Advance) -> list:
    return sorted(advance.payouts.all(), key=lambda p: p.sequence)


# GET /api/v1/events (contract 1.7) ------------------------------------------------------------------------
#
# Events are numbered by their id when inserted, but commit in any order: a page ordered by id alone could
# show id 8 while id 7's transaction is still running, and a client continuing after 8 would never see 7.
# So events are ordered by (written_xact, id), the writing transaction's id first, and a page shows only
# events whose transaction is older than every transaction still running (pg_snapshot_xmin): nothing can
# later appear before the end of a page. Events of the reading transaction itself are visible to it (tests,
# and a caller reading inside its own write). The price: an event becomes listable once every transaction
# that started writing before it has finished (usually milliseconds; a long batch job delays it).

_SETTLED = RawSQL(
    "(written_xact < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    " OR written_xact = pg_current_xact_id_if_assigned()::text::bigint)",
    (),
    output_field=BooleanField(),
)


def event_position(*, company: Company, public_id: str) -> tuple[int, int] | None:
    """Where the company's event `public_id` stands in the listing order, or None if there is no such event."""
    row = WebhookEvent.objects.filter(company=company, public_id=public_id).values_list("written_xact", "id").first()
    return (row[0], row[1]) if row else None


def event_list(
    *, company: Company, after: tuple[int, int] | None, type: str | None, limit: int
) -> list[WebhookEvent]:
    """Up to `limit` of the company's settled events after position `after`, in the order they were written."""
    qs = WebhookEvent.objects.filter(company=company).filter(_SETTLED)
    if after is not None:
        qs = qs.filter(RawSQL("(written_xact, id) > (%s, %s)", after, output_field=BooleanField()))
    if type:
        qs = qs.filter(type=type)
    return list(qs.only("public_id", "payload", "written_xact").order_by("written_xact", "id")[:limit])
