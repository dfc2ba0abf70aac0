"""Column shapes and public ids shared by the funding models."""

from django.conf import settings
from ulid import ULID

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}
RATE = {"max_digits": 12, "decimal_places": settings.RATE_DECIMAL_PLACES}
ACCRUAL = {"max_digits": 24, "decimal_places": settings.ACCRUAL_DECIMAL_PLACES}


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"
