"""Routing: cheapest first, best success rate on retry, hours and amount limits, never a tried channel."""

from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from settlement.models import Channel
from settlement.services.channels import ChannelRate
from settlement.services.routing import route_choose

SH = ZoneInfo("Asia/Shanghai")
WED_10 = datetime(2026, 11, 25, 10, 0, tzinfo=SH)
WED_20 = datetime(2026, 11, 25, 20, 0, tzinfo=SH)


def _channel(pk, code, fee, *, max_amount="9999999999999.99", start=None, end=None, weekend=True, **kw):
    return Channel(
        pk=pk,
        code=code,
        name=code,
        fee_fixed=Decimal(fee),
        fee_bps=Decimal(0),
        min_amount=Decimal("0.01"),
        max_amount=Decimal(max_amount),
        service_start=start,
        service_end=end,
        runs_on_non_business_days=weekend,
        adapter="x",
        **kw,
    )


def _set():
    return [
        _channel(1, "HVPS", "10.00", start=time(8, 30), end=time(17, 15), weekend=False),
        _channel(
            2, "BEPS", "0.50", max_amount="50000.00", start=time(8, 30), end=time(16, 30), weekend=False
        ),
        _channel(3, "IBPS", "1.00", max_amount="50000.00"),
    ]


def _route(
    amount, *, channels=None, now=WED_10, business_day=True, tried=(), rates=None, retry=False, same=None
):
    return route_choose(
        amount=Decimal(amount),
        bank_code="ICBC",
        channels=channels or _set(),
        tried_channel_ids=set(tried),
        rates=rates or {},
        now=now,
        business_day=business_day,
        retry=retry,
        same_channel_id=same,
        unhealthy_below=0.5,
        min_samples=20,
    )


def test_first_attempt_goes_to_the_cheapest_eligible_channel():
    decision = _route("100.00")
    assert decision.channel.code == "BEPS"
    assert decision.reason == "cheapest_eligible"
    assert decision.inputs["channels"]["HVPS"]["fee"] == "10.00"
    assert decision.as_json()["channel"] == "BEPS"


def test_amount_limit_excludes_capped_channels():
    decision = _route("50000.01")
    assert decision.channel.code == "HVPS"
    assert decision.inputs["channels"]["BEPS"]["refused"] == "above_max_amount"
    assert decision.inputs["channels"]["IBPS"]["refused"] == "above_max_amount"


def test_service_hours_in_shanghai_time():
    decision = _route("100.00", now=WED_20)
    assert decision.channel.code == "IBPS"
    assert decision.inputs["channels"]["BEPS"]["refused"] == "outside_service_hours"
    # 16:45 Shanghai: BEPS closed (16:30), HVPS still open but dearer than IBPS.
    assert _route("100.00", now=datetime(2026, 11, 25, 16, 45, tzinfo=SH)).channel.code == "IBPS"
    assert _route("60000.00", now=datetime(2026, 11, 25, 16, 45, tzinfo=SH)).channel.code == "HVPS"


def test_non_business_day_only_7x24_channels():
    decision = _route("100.00", business_day=False)
    assert decision.channel.code == "IBPS"
    assert decision.inputs["channels"]["BEPS"]["refused"] == "non_business_day"


def test_large_amount_out_of_hours_waits_rather_than_fails():
    decision = _route("60000.00", now=WED_20)
    assert decision.channel is None and decision.impossible is False


def test_amount_no_channel_can_take_is_impossible():
    decision = _route("60000.00", channels=_set()[1:])
    assert decision.channel is None and decision.impossible is True


def test_disabled_and_unhealthy_channels_are_skipped():
    channels = _set()
    channels[1].enabled = False
    channels[2].healthy = False
    decision = _route("100.00", channels=channels)
    assert decision.channel.code == "HVPS"
    assert decision.inputs["channels"]["IBPS"]["refused"] == "unhealthy"
    low = {1: ChannelRate(succeeded=5, failed=20)}
    assert _route("100.00", channels=channels, rates=low).channel is None


def test_retry_goes_to_best_recent_success_rate_among_untried():
    rates = {
        1: ChannelRate(succeeded=99, failed=1),
        2: ChannelRate(succeeded=50, failed=50),
        3: ChannelRate(succeeded=90, failed=10),
    }
    decision = _route("100.00", tried={2}, rates=rates, retry=True)
    assert decision.channel.code == "HVPS"
    assert decision.reason == "best_recent_success_rate"
    assert decision.inputs["tried"] == ["BEPS"]
    # IBPS beats HVPS once HVPS's record is worse, though IBPS is tried second by price.
    rates[1] = ChannelRate(succeeded=80, failed=20)
    assert _route("100.00", tried={2}, rates=rates, retry=True).channel.code == "IBPS"


def test_never_a_tried_channel():
    rates = {2: ChannelRate(succeeded=1000, failed=0)}
    decision = _route("100.00", tried={2, 3}, rates=rates, retry=True)
    assert decision.channel.code == "HVPS"
    assert decision.inputs["channels"]["BEPS"]["refused"] == "already_tried"
    none_left = _route("100.00", tried={1, 2, 3}, retry=True)
    assert none_left.channel is None and none_left.impossible is True


def test_retry_same_channel_prefers_that_channel():
    decision = _route("100.00", tried={3}, retry=True, same=3)
    assert decision.channel.code == "IBPS" and decision.reason == "retry_same_channel"
