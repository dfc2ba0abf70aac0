"""The status-query back-off: 15s, 30s, 1m, 2m, 5m, 10m, then every 30m until cut-off, never past review."""

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from settlement.models import Channel, PayoutAttempt
from settlement.services.disbursement import next_query_time, query_delay

SH = ZoneInfo("Asia/Shanghai")


def test_backoff_steps():
    assert [query_delay(n).total_seconds() for n in range(8)] == [15, 30, 60, 120, 300, 600, 1800, 1800]


def _attempt(query_count: int, review_due_at: datetime) -> PayoutAttempt:
    return PayoutAttempt(query_count=query_count, review_due_at=review_due_at, amount=Decimal("1.00"))


def test_next_query_for_a_7x24_channel_follows_the_schedule_until_review():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=SH)
    channel = Channel(code="IBPS")
    attempt = _attempt(2, now + timedelta(hours=6))
    assert next_query_time(attempt=attempt, channel=channel, now=now) == now + timedelta(minutes=1)
    attempt = _attempt(9, now + timedelta(minutes=10))
    assert next_query_time(attempt=attempt, channel=channel, now=now) == now + timedelta(minutes=10)


def test_after_the_cut_off_the_next_look_is_the_review_deadline():
    now = datetime(2026, 11, 25, 17, 0, tzinfo=SH)
    channel = Channel(code="HVPS", service_start=time(8, 30), service_end=time(17, 15))
    review = now + timedelta(hours=6)
    assert next_query_time(attempt=_attempt(0, review), channel=channel, now=now) == now + timedelta(
        seconds=15
    )
    # Every 30 minutes would cross 17:15: the statement takes over, the next look is the review deadline.
    assert next_query_time(attempt=_attempt(6, review), channel=channel, now=now) == review
