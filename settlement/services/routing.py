"""Routing: price for the first attempt, quality for retries, never a channel already tried.

`route_choose` is a pure function of its inputs so that the decision can be recorded and unit-tested.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from settlement.models import Channel
from settlement.services.channels import ChannelRate, channel_fee


@dataclass
class RoutingDecision:
    channel: Channel | None
    reason: str
    inputs: dict = field(default_factory=dict)
    # True when no channel could ever take this payout (amount, bank, disabled): fail instead of waiting.
    impossible: bool = False

    def as_json(self) -> dict:
        return {"channel": self.channel.code if self.channel else None, "reason": self.reason, **self.inputs}


def _in_service_hours(channel: Channel, local_now: datetime) -> bool:
    if channel.service_start is None or channel.service_end is None:
        return True
    t = local_now.time()
    if channel.service_start <= channel.service_end:
        return channel.service_start <= t < channel.service_end
    return t >= channel.service_start or t < channel.service_end  # a window across midnight


def channel_static_refusal(channel: Channel, *, amount: Decimal, bank_code: str) -> str:
    """Why this channel can never take the payout ('' if it can)."""
    if not channel.enabled:
        return "disabled"
    if amount < channel.min_amount:
        return "below_min_amount"
    if amount > channel.max_amount:
        return "above_max_amount"
    banks = [b.strip() for b in channel.bank_codes.split(",") if b.strip()]
    if banks and bank_code not in banks:
        return "bank_not_reachable"
    return ""


def channel_time_refusal(channel: Channel, *, local_now: datetime, business_day: bool) -> str:
    """Why this channel cannot take a payout right now ('' if it can)."""
    if not business_day and not channel.runs_on_non_business_days:
        return "non_business_day"
    if not _in_service_hours(channel, local_now):
        return "outside_service_hours"
    return ""


def route_choose(
    *,
    amount: Decimal,
    bank_code: str,
    channels: list[Channel],
    tried_channel_ids: set[int],
    rates: dict[int, ChannelRate],
    now: datetime,
    business_day: bool,
    retry: bool,
    same_channel_id: int | None = None,
    unhealthy_below: float | None = None,
    min_samples: int = 20,
) -> RoutingDecision:
    """Pick the channel for the next attempt.

    First attempt: the cheapest eligible channel. Retry after an explicit retryable failure: the eligible,
    untried channel with the best recent success rate (ties: cheaper). `same_channel_id` (decision
    retry_same_channel) allows that one tried channel again and prefers it.
    """
    local_now = timezone.localtime(now)
    considered = {}
    eligible: list[Channel] = []
    ever_possible = False
    for channel in channels:
        refusal = channel_static_refusal(channel, amount=amount, bank_code=bank_code)
        if not refusal:
            ever_possible = True
            refusal = channel_time_refusal(channel, local_now=local_now, business_day=business_day)
        rate = rates.get(channel.pk)
        if not refusal and not channel.healthy:
            refusal = "unhealthy"
        if (
            not refusal
            and unhealthy_below is not None
            and rate is not None
            and rate.samples >= min_samples
            and rate.rate is not None
            and rate.rate < unhealthy_below
        ):
            refusal = "low_success_rate"
        if not refusal and channel.pk in tried_channel_ids and channel.pk != same_channel_id:
            refusal = "already_tried"
        considered[channel.code] = {
            "fee": str(channel_fee(channel=channel, amount=amount)),
            "success_rate": None if rate is None or rate.rate is None else round(rate.rate, 4),
            "samples": 0 if rate is None else rate.samples,
            "refused": refusal or None,
        }
        if not refusal:
            eligible.append(channel)
    inputs = {
        "amount": str(amount),
        "at": local_now.isoformat(timespec="seconds"),
        "business_day": business_day,
        "retry": retry,
        "tried": sorted(c.code for c in channels if c.pk in tried_channel_ids),
        "channels": considered,
    }
    if not eligible:
        untried_possible = any(
            not channel_static_refusal(c, amount=amount, bank_code=bank_code)
            and (c.pk not in tried_channel_ids or c.pk == same_channel_id)
            for c in channels
        )
        return RoutingDecision(
            None, "no_eligible_channel", inputs, impossible=not (ever_possible and untried_possible)
        )
    if same_channel_id is not None and any(c.pk == same_channel_id for c in eligible):
        chosen = next(c for c in eligible if c.pk == same_channel_id)
        return RoutingDecision(chosen, "retry_same_channel", inputs)
    if not retry:
        chosen = min(eligible, key=lambda c: (channel_fee(channel=c, amount=amount), c.code))
        return RoutingDecision(chosen, "cheapest_eligible", inputs)
    chosen = min(
        eligible,
        key=lambda c: (
            -(rates.get(c.pk) or ChannelRate(0, 0)).score,
            channel_fee(channel=c, amount=amount),
            c.code,
        ),
    )
    return RoutingDecision(chosen, "best_recent_success_rate", inputs)
