"""Reads for the API: the caller's credit line as of now and its advances."""

from typing import Any

from django.db.models import QuerySet

from funding.models import Advance, Company
from funding.selectors import credit_line_view, settlement_available

__all__ = ["advance_list", "credit_line_view", "settlement_available"]


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
