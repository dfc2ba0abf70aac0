"""Channels: the simulated set, fees, error-map look-ups and recent success rates."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ledger.money import money
from settlement.models import AttemptStatus, Channel, ChannelErrorMapping, ErrorDecision, PayoutAttempt

SIMULATED_ADAPTER = "settlement.adapters.simulated.SimulatedChannelAdapter"

# Each simulated channel speaks its own failure codes, as real ones do; the error map translates them.
_FINAL = ErrorDecision.FINAL_FAILURE
_FAILOVER = ErrorDecision.FAILOVER
_SAME = ErrorDecision.RETRY_SAME_CHANNEL
_UNKNOWN = ErrorDecision.TREAT_AS_UNKNOWN
SIMULATED_ERROR_CODES: dict[str, list[tuple[str, str, str]]] = {
    "HVPS": [
        ("HV0101", "account_closed", _FINAL),
        ("HV0102", "account_frozen", _FAILOVER),
        ("HV0103", "name_mismatch", _FINAL),
        ("HV0104", "invalid_account", _FINAL),
        ("HV0201", "limit_exceeded", _FAILOVER),
        ("HV0901", "channel_busy", _FAILOVER),
        ("HV0999", "channel_error", _UNKNOWN),
    ],
    "BEPS": [
        ("BE-ACCT-CLOSED", "account_closed", _FINAL),
        ("BE-ACCT-FROZEN", "account_frozen", _FAILOVER),
        ("BE-NAME-MISMATCH", "name_mismatch", _FINAL),
        ("BE-ACCT-INVALID", "invalid_account", _FINAL),
        ("BE-LIMIT", "limit_exceeded", _FAILOVER),
        ("BE-BUSY", "channel_busy", _SAME),
    ],
    "IBPS": [
        ("IB3001", "account_closed", _FINAL),
        ("IB3002", "account_frozen", _FAILOVER),
        ("IB3003", "name_mismatch", _FINAL),
        ("IB3004", "invalid_account", _FINAL),
        ("IB4001", "limit_exceeded", _FAILOVER),
        ("IB5001", "channel_busy", _FAILOVER),
    ],
    "INTERNAL": [
        ("E_CLOSED", "account_closed", _FINAL),
        ("E_FROZEN", "account_frozen", _FAILOVER),
        ("E_NAME", "name_mismatch", _FINAL),
        ("E_ACCOUNT", "invalid_account", _FINAL),
        ("E_LIMIT", "limit_exceeded", _FAILOVER),
        ("E_BUSY", "channel_busy", _SAME),
    ],
}

SIMULATED_CHANNELS: list[dict] = [
    # Large value, business hours, dear, very reliable.
    {
        "code": "HVPS",
        "name": "High-value payment system (simulated)",
        "fee_fixed": "10.00",
        "fee_bps": "0",
        "min_amount": "0.01",
        "max_amount": "9999999999999.99",
        "service_start": time(8, 30),
        "service_end": time(17, 15),
        "runs_on_non_business_days": False,
        "adapter_settings": {"latency_ms": 5, "failure_rate": 0.005, "timeout_rate": 0.002, "max_in_flight": 8},
    },
    # Bulk, cheap, slower.
    {
        "code": "BEPS",
        "name": "Bulk electronic payment system (simulated)",
        "fee_fixed": "0.50",
        "fee_bps": "0",
        "min_amount": "0.01",
        "max_amount": "50000.00",
        "service_start": time(8, 30),
        "service_end": time(16, 30),
        "runs_on_non_business_days": False,
        "adapter_settings": {
            "latency_ms": 30,
            "failure_rate": 0.02,
            "timeout_rate": 0.01,
            "late_success_rate": 0.05,
            "batch_file": True,
        },
    },
    # 7x24 online banking, per-payout cap.
    {
        "code": "IBPS",
        "name": "Internet banking payment system (simulated)",
        "fee_fixed": "1.00",
        "fee_bps": "0",
        "min_amount": "0.01",
        "max_amount": "50000.00",
        "service_start": None,
        "service_end": None,
        "runs_on_non_business_days": True,
        "adapter_settings": {"latency_ms": 10, "failure_rate": 0.02, "timeout_rate": 0.01, "max_in_flight": 8},
    },
    # Transfers to accounts at our own bank (bank code SELF): free, 7x24.
    {
        "code": "INTERNAL",
        "name": "Internal transfer (simulated)",
        "fee_fixed": "0.00",
        "fee_bps": "0",
        "min_amount": "0.01",
        "max_amount": "9999999999999.99",
        "service_start": None,
        "service_end": None,
        "runs_on_non_business_days": True,
        "bank_codes": "SELF",
        "adapter_settings": {"latency_ms": 1, "failure_rate": 0.01, "max_in_flight": 8},
    },
]


def channel_seed_simulated() -> list[Channel]:
    """Create the four simulated channels and their error maps. Safe to run again; staff edits are kept."""
    channels = []
    with transaction.atomic():
        for spec in SIMULATED_CHANNELS:
            spec = dict(spec)
            code = spec.pop("code")
            codes = SIMULATED_ERROR_CODES[code]
            spec["adapter_settings"] = {
                "seed": 1,
                **spec["adapter_settings"],
                "failure_codes": [c for c, _, _ in codes],
            }
            channel, _ = Channel.objects.get_or_create(
                code=code, defaults={**spec, "adapter": SIMULATED_ADAPTER}
            )
            for channel_code, unified, decision in codes:
                ChannelErrorMapping.objects.get_or_create(
                    channel=channel,
                    channel_code=channel_code,
                    defaults={"unified_code": unified, "decision": decision},
                )
            channels.append(channel)
    return channels


def channel_fee(*, channel: Channel, amount: Decimal) -> Decimal:
    return money(channel.fee_fixed + amount * channel.fee_bps / Decimal(10000))


@dataclass(frozen=True)
class MappedError:
    unified_code: str
    decision: str
    mapped: bool


def error_map_lookup(*, channel: Channel, channel_code: str) -> MappedError:
    """An unmapped code is never read as a failure: the money may have left, so it is unknown."""
    mapping = ChannelErrorMapping.objects.filter(channel=channel, channel_code=channel_code).first()
    if mapping is None:
        return MappedError(
            unified_code="unmapped_channel_code", decision=ErrorDecision.TREAT_AS_UNKNOWN, mapped=False
        )
    return MappedError(unified_code=mapping.unified_code, decision=mapping.decision, mapped=True)


def channel_success_rate(*, succeeded: int, failed: int) -> Decimal | None:
    """The channel success rate, one definition for routing, the console and its reports:
    succeeded / (succeeded + failed) as a fraction. Attempts still processing or unknown are undecided and do
    not count; None before any decided attempt."""
    decided = succeeded + failed
    return Decimal(succeeded) / Decimal(decided) if decided else None


# The attempt counts channel_success_rate takes, as aggregates over PayoutAttempt rows.
SUCCESS_RATE_COUNTS = {
    "succeeded": Count("id", filter=Q(status=AttemptStatus.SUCCEEDED)),
    "failed": Count("id", filter=Q(status=AttemptStatus.FAILED)),
}


@dataclass(frozen=True)
class ChannelRate:
    succeeded: int
    failed: int

    @property
    def samples(self) -> int:
        return self.succeeded + self.failed

    @property
    def rate(self) -> float | None:
        rate = channel_success_rate(succeeded=self.succeeded, failed=self.failed)
        return None if rate is None else float(rate)

    @property
    def score(self) -> float:
        """Laplace-smoothed, so that a channel with no history is neither best nor worst."""
        return (self.succeeded + 1) / (self.samples + 2)


def channel_success_rates(
    *, now: datetime | None = None, window: timedelta | None = None
) -> dict[int, ChannelRate]:
    """Per-channel outcome counts of attempts resolved in the sliding window (default: the setting)."""
    now = now or timezone.now()
    window = window or timedelta(seconds=settings.DISBURSEMENT_SUCCESS_WINDOW_SECONDS)
    rows = (
        PayoutAttempt.objects.filter(resolved_at__gte=now - window, resolved_at__lte=now)
        .values("channel_id")
        .annotate(**SUCCESS_RATE_COUNTS)
    )
    return {row["channel_id"]: ChannelRate(succeeded=row["succeeded"], failed=row["failed"]) for row in rows}
