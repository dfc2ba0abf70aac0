"""Column shapes and public ids shared by the funding models."""

from django.conf import settings
from ulid import ULID

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}
RATE = {"max_digits": 12, "decimal_places": settings.RATE_DECIMAL_PLACES}
ACCRUAL = {"max_digits": 24, "decimal_places": settings.ACCRUAL_DECIMAL_PLACES}


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def transition_sources(method) -> list:
    """The source states of a django-fsm-2 transition (e.g. `Advance.mark_overdue`), in declaration order.

    A set-based SQL transition (an UPDATE ... WHERE status = ANY(...)) takes its WHERE clause from here, so
    it names exactly the states the FSM allows. Wildcard sources ("*", "+") have no such list: refused.
    """
    sources = list(method._django_fsm.transitions)
    if any(source in ("*", "+") for source in sources):
        raise ValueError(f"{method.__qualname__} has a wildcard source; name its states for set-based SQL")
    return sources
