"""The one place where amounts are quantized. Half-up (四舍五入) to the fen for posted CNY amounts."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

CENT = Decimal("0.01")
RATE_QUANTUM = Decimal(1).scaleb(-settings.RATE_DECIMAL_PLACES)
ACCRUAL_QUANTUM = Decimal(1).scaleb(-settings.ACCRUAL_DECIMAL_PLACES)
MAX_AMOUNT = Decimal("9999999999999.99")
ZERO = Decimal("0.00")
ROUNDING = ROUND_HALF_UP


def money(value: Decimal | int | str) -> Decimal:
    """Quantize to 0.01, half-up. Refuses floats: money never passes through binary floating point."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    try:
        return Decimal(value).quantize(CENT, rounding=ROUNDING)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def rate(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float):
        raise TypeError("rates must not be floats")
    return Decimal(value).quantize(RATE_QUANTUM, rounding=ROUNDING)


def accrual(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float):
        raise TypeError("accruals must not be floats")
    return Decimal(value).quantize(ACCRUAL_QUANTUM, rounding=ROUNDING)
