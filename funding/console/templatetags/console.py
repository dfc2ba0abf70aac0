"""Template filters of the console: amounts with thousands separators, percentages, durations."""

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django import template

from funding.selectors import calendar_outlook
from ledger.money import money

register = template.Library()

EMPTY = "—"


def money_format(value) -> str:
    """1234567.5 -> "1,234,567.50" (half-up to the fen). Floats are refused like everywhere else."""
    if value is None or value == "":
        return EMPTY
    try:
        amount = money(value if isinstance(value, Decimal | int | float) else str(value))
    except (TypeError, ValueError, InvalidOperation):
        return EMPTY
    return f"{amount:,.2f}"


@register.filter(name="money")
def money_filter(value) -> str:
    return money_format(value)


@register.filter(name="percent")
def percent_filter(value) -> str:
    if value is None or value == "":
        return EMPTY
    return f"{Decimal(value):,.2f}%"


@register.filter(name="age")
def age_filter(value) -> str:
    """A timedelta as "2d 3h", "3h 05m" or "4m"."""
    if not isinstance(value, timedelta):
        return EMPTY
    seconds = max(int(value.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes = seconds // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


@register.filter(name="get_item")
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter(name="is_amount")
def is_amount(value) -> bool:
    return isinstance(value, Decimal)


@register.filter(name="admin_change_url")
def admin_change_url(obj) -> str:
    """The admin change page of `obj` when its model is registered with the admin, else ""."""
    from django.contrib import admin
    from django.urls import NoReverseMatch, reverse

    if obj is None or not admin.site.is_registered(type(obj)):
        return ""
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


@register.inclusion_tag("console/_calendar_banner.html")
def calendar_banner() -> dict:
    """The warning staff see from 30 days before the last published calendar day (contract 2.3)."""
    return {"outlook": calendar_outlook()}


@register.inclusion_tag("console/_integrity_banner.html")
def integrity_banner() -> dict:
    """The alert staff see while the latest integrity check (check_integrity, end of day) failed."""
    from settlement.selectors import integrity_check_latest

    latest = integrity_check_latest()
    return {"check": latest if latest is not None and not latest.passed else None}
