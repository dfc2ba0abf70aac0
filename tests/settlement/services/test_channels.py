"""One channel success rate (issue 12 part 5): routing, the console's dashboard and its channel report all
take settlement.services.channels.channel_success_rate."""

from decimal import Decimal

from funding.console.reports import percent, success_rate_percent
from settlement.services.channels import ChannelRate, channel_success_rate


def test_the_rate_counts_decided_attempts_only():
    assert channel_success_rate(succeeded=0, failed=0) is None
    assert channel_success_rate(succeeded=3, failed=1) == Decimal("0.75")
    assert channel_success_rate(succeeded=0, failed=5) == Decimal(0)
    assert ChannelRate(succeeded=0, failed=0).rate is None
    assert success_rate_percent(succeeded=0, failed=0) is None
    assert success_rate_percent(succeeded=2, failed=1) == Decimal("66.67")


def test_routing_and_the_console_see_the_same_rate():
    for succeeded in range(0, 120):
        for failed in range(0, 120):
            rate = ChannelRate(succeeded=succeeded, failed=failed).rate
            shown = success_rate_percent(succeeded=succeeded, failed=failed)
            if succeeded + failed == 0:
                assert (rate, shown) == (None, None)
                continue
            # Routing's float is the exact quotient, the console's percent the same quotient to 0.01.
            assert rate == succeeded / (succeeded + failed)
            assert shown == percent(succeeded, succeeded + failed)
