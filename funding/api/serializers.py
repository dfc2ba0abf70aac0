"""Input validation (strict: unknown fields rejected, amounts as strings) and the documented output shapes."""

import re
from datetime import UTC
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from funding.models import AdvanceStatus, PayoutStatus
from settlement.models import RepaymentSource

AMOUNT_RE = re.compile(r"(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?")
MAX_AMOUNT = Decimal("9999999999999.99")
SURROGATES = re.compile(r"[\ud800-\udfff]")
# Every character of the Unicode general categories Cc (controls: NUL, tab, newline, DEL, C1), Cf (invisible
# formatting: bidi overrides such as U+202E, zero-width space and joiners, the BOM, soft hyphen), Zl and Zp
# (line and paragraph separators U+2028, U+2029), as of Unicode 14 (Python 3.11). None has a place in an id, a
# name, a bank code or a URL; bidi overrides and zero-width characters make two different values look the same
# to staff. Written out because computing it costs a second at import; tests/funding/api/test_validation.py
# checks it against unicodedata.
_INVISIBLE_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
INVISIBLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
CONTROL = re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _INVISIBLE_RANGES) + "]")


def no_surrogates(value: str) -> None:
    if SURROGATES.search(value):
        raise serializers.ValidationError("Contains characters that are not valid Unicode.")


def no_control_characters(value: str) -> None:
    if CONTROL.search(value):
        raise serializers.ValidationError(
            "Must not contain control, invisible formatting or line separator characters "
            "(Unicode categories Cc, Cf, Zl, Zp)."
        )


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, naming each (a typo must not silently lose a value)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = [str(k) for k in data if k not in self.fields or self.fields[k].read_only]
        errors = {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = dict(exc.detail)
            value = None
        for name in unknown:
            errors[name] = ["Unknown field."]
        if errors:
            raise serializers.ValidationError(errors)
        return value


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$",
        "example": "1500.00",
        "description": "Decimal string, > 0, at most 2 fraction digits.",
    }
)
class AmountField(serializers.Field):
    default_error_messages = {
        "type": 'Send the amount as a JSON string, e.g. "1500.00".',
        "format": 'Not a valid amount: digits with at most 2 fraction digits, e.g. "1500.00".',
        "positive": "Must be greater than zero.",
        "max": "Must not exceed 9999999999999.99.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("type")
        if not AMOUNT_RE.fullmatch(data):
            self.fail("format")
        value = Decimal(data)
        if value <= 0:
            self.fail("positive")
        if value > MAX_AMOUNT:
            self.fail("max")
        return value.quantize(Decimal("0.01"))

    def to_representation(self, value):
        return f"{value:.2f}"


class StrictCharField(serializers.CharField):
    """JSON strings only: 123 is not silently turned into "123"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def text(max_length: int, min_length: int = 1, **kwargs) -> serializers.CharField:
    return StrictCharField(
        max_length=max_length,
        min_length=min_length,
        trim_whitespace=False,
        validators=[no_surrogates, no_control_characters],
        **kwargs,
    )


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PayoutInputSerializer(StrictSerializer):
    external_id = text(64, help_text="Unique within the advance.")
    beneficiary_name = text(100)
    account_no = StrictRegexField(
        r"^[0-9]{8,32}$",
        max_length=32,
        trim_whitespace=False,
        validators=[no_control_characters],
        error_messages={"invalid": "Must be 8 to 32 digits."},
    )
    bank_code = StrictRegexField(
        r"^[A-Za-z0-9_-]{1,16}$",
        max_length=16,
        trim_whitespace=False,
        validators=[no_control_characters],
        error_messages={"invalid": "Must be 1 to 16 letters, digits, '_' or '-'."},
    )
    amount = AmountField()


class AdvanceCreateSerializer(StrictSerializer):
    external_id = text(64, help_text="The company's own batch id, unique per company forever.")
    currency = serializers.ChoiceField(choices=[settings.ENGINE_CURRENCY])
    amount = AmountField()
    use_own_funds = StrictBooleanField(default=True, required=False)
    payouts = PayoutInputSerializer(many=True, min_length=1, max_length=1000, allow_empty=False)

    def validate(self, attrs):
        errors = {}
        payouts = attrs["payouts"]
        seen: dict[str, int] = {}
        for index, payout in enumerate(payouts):
            if payout["external_id"] in seen:
                errors[f"payouts.{index}.external_id"] = [
                    f"Duplicates the external_id of payouts.{seen[payout['external_id']]}."
                ]
            seen.setdefault(payout["external_id"], index)
        total = sum((p["amount"] for p in payouts), Decimal("0.00"))
        if total != attrs["amount"]:
            errors["payouts"] = [
                f"The payout amounts add up to {total:.2f}, not to amount {attrs['amount']:.2f}."
            ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# The fast path of POST /api/v1/advances ----------------------------------------------------------------
#
# DRF's serializer costs about a sixth of a request's CPU (it deep-copies its fields on every request, then
# validates field by field). advance_create_fast() accepts only bodies that are well-formed in every respect
# and returns exactly what AdvanceCreateSerializer would; anything else returns None and goes through the
# serializer, which alone writes error messages. It may refuse more than the serializer (then the serializer
# decides), never less: tests/funding/api/test_fast_validation.py checks both on generated bodies.

_ADVANCE_FIELDS = frozenset({"external_id", "currency", "amount", "use_own_funds", "payouts"})
_PAYOUT_FIELDS = frozenset({"external_id", "beneficiary_name", "account_no", "bank_code", "amount"})
_ACCOUNT_NO_RE = re.compile(r"[0-9]{8,32}")
_BANK_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_CENT = Decimal("0.01")


def _plain_text(value: object, max_length: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and bool(value.strip())
        and CONTROL.search(value) is None
        and SURROGATES.search(value) is None
    )


def _plain_amount(value: object) -> Decimal | None:
    if not isinstance(value, str) or not AMOUNT_RE.fullmatch(value):
        return None
    amount = Decimal(value)
    if not 0 < amount <= MAX_AMOUNT:
        return None
    return amount.quantize(_CENT)


def advance_create_fast(data: object) -> dict | None:
    """AdvanceCreateSerializer's validated_data for a body that is valid in every respect, else None."""
    if type(data) is not dict or not data.keys() <= _ADVANCE_FIELDS:
        return None
    external_id, payouts = data.get("external_id"), data.get("payouts")
    amount = _plain_amount(data.get("amount"))
    use_own_funds = data.get("use_own_funds", True)
    if (
        amount is None
        or not _plain_text(external_id, 64)
        or data.get("currency") != settings.ENGINE_CURRENCY
        or type(use_own_funds) is not bool
        or type(payouts) is not list
        or not 1 <= len(payouts) <= 1000
    ):
        return None
    validated_payouts = []
    seen: set[str] = set()
    total = Decimal("0.00")
    for payout in payouts:
        if type(payout) is not dict or payout.keys() != _PAYOUT_FIELDS:
            return None
        payout_amount = _plain_amount(payout["amount"])
        payout_external_id, account_no, bank_code = payout["external_id"], payout["account_no"], payout["bank_code"]
        if (
            payout_amount is None
            or not _plain_text(payout_external_id, 64)
            or payout_external_id in seen
            or not _plain_text(payout["beneficiary_name"], 100)
            or type(account_no) is not str
            or not _ACCOUNT_NO_RE.fullmatch(account_no)
            or type(bank_code) is not str
            or not _BANK_CODE_RE.fullmatch(bank_code)
        ):
            return None
        seen.add(payout_external_id)
        total += payout_amount
        validated_payouts.append(
            {
                "external_id": payout_external_id,
                "beneficiary_name": payout["beneficiary_name"],
                "account_no": account_no,
                "bank_code": bank_code,
                "amount": payout_amount,
            }
        )
    if total != amount:
        return None
    return {
        "external_id": external_id,
        "currency": settings.ENGINE_CURRENCY,
        "amount": amount,
        "use_own_funds": use_own_funds,
        "payouts": validated_payouts,
    }


class SafeDateTimeField(serializers.DateTimeField):
    """Refuses instants that cannot be expressed in UTC (year 1 east of Greenwich, year 9999 west)."""

    def to_internal_value(self, value):
        try:
            # DRF itself overflows on such values (rest_framework.utils.timezone.datetime_exists).
            result = super().to_internal_value(value)
            result.astimezone(UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError("Date and time out of range.") from None
        return result


class AdvanceListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=AdvanceStatus.values, required=False)
    business_date = serializers.DateField(required=False)
    external_id = text(64, required=False)
    created_after = SafeDateTimeField(required=False)
    created_before = SafeDateTimeField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)
    cursor = text(500, required=False)


class EventListQuerySerializer(serializers.Serializer):
    after = serializers.RegexField(
        r"^evt_[0-9A-Z]{26}$",
        required=False,
        validators=[no_control_characters],
        help_text="An event id: the events written after it (omit to start from the oldest kept).",
        error_messages={"invalid": "Must be an event id (evt_ followed by 26 characters)."},
    )
    type = serializers.RegexField(
        r"^[a-z][a-z_]*(\.[a-z_]+)*$",
        max_length=48,
        required=False,
        validators=[no_control_characters],
        help_text="Only events of this type, e.g. advance.disbursed.",
        error_messages={"invalid": "Must be an event type such as advance.disbursed."},
    )
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)


class RepaymentListQuerySerializer(serializers.Serializer):
    business_date = serializers.DateField(required=False)


class StatementQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")


class StrictURLField(serializers.URLField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class WebhookEndpointInputSerializer(StrictSerializer):
    url = StrictURLField(max_length=500, validators=[no_surrogates, no_control_characters])


# Output shapes (documentation and schema conformance) -----------------------------------------------------

MONEY_STR = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": "1500.00"}


@extend_schema_field(MONEY_STR)
class MoneyOut(serializers.CharField):
    pass


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case code.")
    message = serializers.CharField()
    details = serializers.DictField(
        child=serializers.JSONField(),
        help_text="For validation_error: field path (dotted for nested fields) -> list of messages.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class PayoutAttemptOut(serializers.Serializer):
    serial = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()
    failure_code = serializers.CharField(allow_null=True)


class PayoutOut(serializers.Serializer):
    id = serializers.CharField()
    external_id = serializers.CharField()
    status = serializers.ChoiceField(
        choices=PayoutStatus.values,
        help_text="`returned`: paid, then sent back by the beneficiary's bank (退汇); see the advance's "
        "`returned_amount`.",
    )
    amount = MoneyOut()
    own_funds_amount = MoneyOut()
    advanced_amount = MoneyOut()
    beneficiary_name = serializers.CharField()
    account_no_last4 = serializers.CharField()
    bank_code = serializers.CharField()
    failure_code = serializers.CharField(allow_null=True)
    value_date = serializers.DateField(
        allow_null=True, help_text="The business date the funds left the bank; the fee counts days from it."
    )
    version = serializers.IntegerField()
    attempts = PayoutAttemptOut(many=True)


class AdvanceOut(serializers.Serializer):
    id = serializers.CharField()
    external_id = serializers.CharField()
    status = serializers.ChoiceField(choices=AdvanceStatus.values)
    currency = serializers.CharField()
    amount = MoneyOut()
    own_funds_amount = MoneyOut()
    advanced_amount = MoneyOut()
    disbursed_amount = MoneyOut(help_text="Paid out by payouts that succeeded, net of returned payouts.")
    returned_amount = MoneyOut(help_text="Sum of the payouts returned by the beneficiaries' banks (退汇). A return "
                               "booked on or before due_date recomputes the fee on what stays disbursed; a "
                               "repaid excess is credited to the settlement account (a `refund` repayment).")
    fee = MoneyOut()
    penalty = MoneyOut()
    business_date = serializers.DateField()
    due_date = serializers.DateField()
    repaid_amount = MoneyOut()
    outstanding_amount = MoneyOut()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    payouts = PayoutOut(many=True)


class AdvancePageOut(serializers.Serializer):
    results = AdvanceOut(many=True)
    next = serializers.URLField(allow_null=True)


class LimitFactorOut(serializers.Serializer):
    factor = serializers.ChoiceField(choices=["approved_limit", "flow", "margin"])
    value = MoneyOut()
    multiple = serializers.CharField(required=False, help_text="flow and margin: the factor's multiple")
    base = MoneyOut(required=False, help_text="flow: average daily credits to the settlement account over the "
                                              "window; margin: the margin-deposit balance")
    as_of = serializers.DateField(required=False, help_text="the business date whose data the factor used")
    window_business_days = serializers.IntegerField(required=False, help_text="flow only")
    window_from = serializers.DateField(required=False, allow_null=True, help_text="flow only")
    window_to = serializers.DateField(required=False, allow_null=True, help_text="flow only")


class CreditLineOut(serializers.Serializer):
    company = serializers.CharField()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "frozen", "suspended", "expired", "none"])
    approved_limit = MoneyOut()
    effective_limit = MoneyOut()
    limit_factors = LimitFactorOut(many=True)
    reserved = MoneyOut(help_text="The line's parts of payouts whose outcome is not yet known: not yet sent, sent "
                                  "and awaiting the channel's answer, unknown or in manual review.")
    outstanding = MoneyOut(help_text="Principal paid out by succeeded payouts and not yet repaid (overdue "
                                     "included).")
    overdue = MoneyOut(help_text="Principal outstanding of overdue advances (part of outstanding).")
    available = MoneyOut()
    own_funds_available = MoneyOut(
        help_text="The settlement account's balance at the bank, less what is due for repayment on or before the "
        "business date and not yet collected, less own funds held by advances not yet final; never below 0.00. "
        "The own-funds part of a new advance is taken only from it."
    )
    business_date = serializers.DateField(allow_null=True)
    next_business_date = serializers.DateField(allow_null=True)
    daily_fee_rate = serializers.CharField(allow_null=True)
    daily_cap = MoneyOut(allow_null=True, help_text="The most the line advances on one business date; null: none.")
    advanced_today = MoneyOut(help_text="The line's part of the advances accepted on the business date, "
                                        "cancelled ones excluded.")
    limit_thresholds = serializers.ListField(child=serializers.CharField(), help_text=(
        "Utilisation thresholds announced by credit_line.threshold_reached, e.g. [\"0.80\", \"0.95\"]."))


class AllocationOut(serializers.Serializer):
    advance_id = serializers.CharField()
    penalty = MoneyOut()
    fee = MoneyOut()
    principal = MoneyOut()


class RepaymentOut(serializers.Serializer):
    id = serializers.CharField()
    business_date = serializers.DateField()
    source = serializers.ChoiceField(
        choices=RepaymentSource.values,
        help_text="`settlement_debit`: taken from the settlement account. `refund`: credited back to it, because "
        "a payout whose principal (and fee) had been repaid was returned by the beneficiary's bank (退汇); "
        "the allocations show the refunded principal and fee per advance. `margin_setoff`: the bank applied "
        "the company's margin deposit (保证金) to its overdue debt.",
    )
    amount = MoneyOut()
    allocations = AllocationOut(many=True)
    created_at = serializers.DateTimeField()


class RepaymentListOut(serializers.Serializer):
    results = RepaymentOut(many=True)


class StatementLineOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=["advance", "repayment", "return"], help_text=(
        "`return`: a payout returned on the day (退汇); `id` is the payout's id, `fee` the fee given back "
        "(negative), `returned` the payout's amount, `refunded` what was credited to the settlement account."))
    id = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    advanced = MoneyOut()
    fee = MoneyOut()
    penalty = MoneyOut()
    repaid = MoneyOut()
    outstanding = MoneyOut()
    returned = MoneyOut(help_text="advance: its returned_amount; return: the payout's amount.")
    refunded = MoneyOut(help_text="return: repaid principal and fee credited back to the settlement account.")


class StatementOut(serializers.Serializer):
    company = serializers.CharField()
    business_date = serializers.DateField()
    currency = serializers.CharField()
    opening_outstanding = MoneyOut()
    advanced = MoneyOut()
    fees = MoneyOut()
    repaid = MoneyOut()
    penalties = MoneyOut()
    closing_outstanding = MoneyOut()
    overdue = MoneyOut()
    returned = MoneyOut(help_text="Principal still owed that returned payouts released on the day: closing = "
                        "opening + advanced + fees + penalties - repaid - returned (fees are net of fees given "
                        "back for returns).")
    refunded = MoneyOut(help_text="Credited to the settlement account on the day for returned payouts already "
                        "repaid (the `refund` repayments).")
    lines = StatementLineOut(many=True)


class WebhookEndpointOut(serializers.Serializer):
    url = serializers.CharField(allow_null=True)


class WebhookEndpointSetOut(serializers.Serializer):
    url = serializers.CharField()
    secret = serializers.CharField(help_text="Signing secret; shown only in this response.")


class EventOut(serializers.Serializer):
    id = serializers.CharField(help_text="evt_...; also the X-Event-Id header of its webhook.")
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    data = serializers.DictField(help_text="The resource as its GET endpoint rendered it, with its `version`.")


class EventPageOut(serializers.Serializer):
    results = EventOut(many=True)
    next = serializers.URLField(allow_null=True, help_text="null when there is nothing more yet: poll again later "
                                "with after=<the last id you processed>.")


class WebhookTestOut(serializers.Serializer):
    url = serializers.CharField()
    event_id = serializers.CharField(help_text="X-Event-Id of the ping that was sent.")
    status_code = serializers.IntegerField(help_text="What the receiver answered (any status: this only reports it).")
    duration_ms = serializers.IntegerField(help_text="From the connection to the receiver's answer.")
