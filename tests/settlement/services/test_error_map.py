import pytest

from settlement.models import Channel, ChannelErrorMapping
from settlement.services.channels import SIMULATED_ERROR_CODES, channel_seed_simulated, error_map_lookup

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_keeps_staff_edits():
    channel_seed_simulated()
    hvps = Channel.objects.get(code="HVPS")
    hvps.fee_fixed = "12.00"
    hvps.save()
    channel_seed_simulated()
    assert Channel.objects.count() == 4
    assert str(Channel.objects.get(code="HVPS").fee_fixed) == "12.00"
    assert ChannelErrorMapping.objects.count() == sum(len(v) for v in SIMULATED_ERROR_CODES.values())


def test_mapped_codes_give_unified_code_and_decision():
    channel_seed_simulated()
    beps = Channel.objects.get(code="BEPS")
    assert error_map_lookup(channel=beps, channel_code="BE-ACCT-CLOSED") == (
        error_map_lookup(channel=beps, channel_code="BE-ACCT-CLOSED")
    )
    closed = error_map_lookup(channel=beps, channel_code="BE-ACCT-CLOSED")
    assert (closed.unified_code, closed.decision, closed.mapped) == ("account_closed", "final_failure", True)
    busy = error_map_lookup(channel=beps, channel_code="BE-BUSY")
    assert (busy.unified_code, busy.decision) == ("channel_busy", "retry_same_channel")
    frozen = error_map_lookup(channel=Channel.objects.get(code="IBPS"), channel_code="IB3002")
    assert (frozen.unified_code, frozen.decision) == ("account_frozen", "failover")


def test_unmapped_code_is_unknown_never_failure():
    channel_seed_simulated()
    ibps = Channel.objects.get(code="IBPS")
    result = error_map_lookup(channel=ibps, channel_code="NEVER-SEEN")
    assert (result.unified_code, result.decision, result.mapped) == (
        "unmapped_channel_code",
        "treat_as_unknown",
        False,
    )
    # Another channel's code means nothing here.
    assert error_map_lookup(channel=ibps, channel_code="BE-ACCT-CLOSED").decision == "treat_as_unknown"


def test_unique_per_channel_and_code():
    from django.db import IntegrityError

    channel_seed_simulated()
    with pytest.raises(IntegrityError):
        ChannelErrorMapping.objects.create(
            channel=Channel.objects.get(code="IBPS"),
            channel_code="IB3001",
            unified_code="x",
            decision="failover",
        )


def test_simulated_outcomes_are_deterministic_for_a_seed():
    from decimal import Decimal
    from types import SimpleNamespace

    from settlement.adapters.base import ChannelError, adapter_for
    from settlement.models import SimulatedChannelTransfer

    channel_seed_simulated()
    beps = Channel.objects.get(code="BEPS")
    beps.adapter_settings = {
        **beps.adapter_settings,
        "seed": 7,
        "latency_ms": 0,
        "failure_rate": 0.4,
        "timeout_rate": 0.2,
        "late_success_rate": 0.2,
    }

    def outcomes():
        result = []
        for n in range(40):
            attempt = SimpleNamespace(
                serial=f"po_seed-{n}", amount=Decimal("1.00"), payout=SimpleNamespace(account_no="1")
            )
            try:
                answer = adapter_for(beps).submit(attempt)
                result.append((answer.status, answer.code))
            except ChannelError:
                result.append(("timeout", ""))
        return result

    first = outcomes()
    # A repeated serial gets the channel's first answer (idempotent on the serial)...
    again = outcomes()
    assert [a for a, f in zip(again, first, strict=True) if f[0] != "timeout"] == [
        f for f in first if f[0] != "timeout"
    ]
    SimulatedChannelTransfer.objects.all().delete()
    # ...and a fresh bank side with the same seed draws the same fates.
    assert outcomes() == first
    assert {s for s, _ in first} == {"succeeded", "failed", "timeout", "accepted"}
