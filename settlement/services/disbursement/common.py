"""What every step of a payout's disbursement shares: no channel call inside a transaction, retried short
transactions, the global lock order of money rows, routing inputs, the query schedule, payout events."""


import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from funding.models import Payout
from funding.representations import payout_representation
from funding.selectors import calendar_is_business_day
from funding.services.events import event_emit
from ledger.models import Account, AccountKind
from ledger.services import account_get_or_create
from settlement.models import AttemptStatus, Channel, ErrorDecision, PayoutAttempt
from settlement.services.channels import channel_success_rates
from settlement.services.routing import RoutingDecision, route_choose

T = TypeVar("T")


LIVE = (AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN)


class OpenTransactionError(RuntimeError):
    """A channel call was about to happen inside a database transaction."""


def no_transaction() -> None:
    if connection.in_atomic_block:
        raise OpenTransactionError("channel calls must run outside any database transaction")


def retrying(fn: Callable[[], T], *, tries: int = 6) -> T:
    """Run one short transaction, again on a deadlock or serialization failure (PostgreSQL rolled it back)."""
    for n in range(tries):
        try:
            return fn()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in ("40P01", "40001") or connection.in_atomic_block or n == tries - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05) * (n + 1))  # noqa: S311
    raise AssertionError("unreachable")


_ENSURED_CHANNEL_ACCOUNTS: set[str] = set()


def lock_money_rows(payout: Payout, channel: Channel, *, confirming: bool = False) -> None:
    """Lock the rows a payout posting will update, in one statement and in one global order (account id,
    then the credit line), so that concurrent postings of different outcomes cannot deadlock.

    Funds out and returns touch the company's settlement and receivable accounts, the channel's in-transit
    account and the credit line (a final failure releases the line's hold); a confirmation touches in-transit,
    clearing, channel cost and the credit line (its hold becomes outstanding).
    """
    if channel.code not in _ENSURED_CHANNEL_ACCOUNTS:
        for kind in (AccountKind.PAYOUTS_IN_TRANSIT, AccountKind.CHANNEL_CLEARING):
            account_get_or_create(kind=kind, owner=channel.code)
        account_get_or_create(kind=AccountKind.CHANNEL_COST)
        _ENSURED_CHANNEL_ACCOUNTS.add(channel.code)
    company = payout.advance.company.code
    if confirming:
        keys = [
            (AccountKind.PAYOUTS_IN_TRANSIT, channel.code),
            (AccountKind.CHANNEL_CLEARING, channel.code),
            (AccountKind.CHANNEL_COST, ""),
        ]
    else:
        keys = [
            (AccountKind.SETTLEMENT, company),
            (AccountKind.ADVANCE_RECEIVABLE, company),
            (AccountKind.PAYOUTS_IN_TRANSIT, channel.code),
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM ledger_account WHERE currency = %s AND (kind, owner) IN ("
            + ", ".join(["(%s, %s)"] * len(keys))
            + ") ORDER BY id FOR NO KEY UPDATE",
            [payout.advance.currency, *[v for key in keys for v in key]],
        )
        cursor.execute(
            "SELECT id FROM funding_creditline WHERE id = %s FOR NO KEY UPDATE",
            [payout.advance.credit_line_id],
        )


def ensure_channel_accounts(channel_code: str) -> None:
    if channel_code not in _ENSURED_CHANNEL_ACCOUNTS:
        for kind in (AccountKind.PAYOUTS_IN_TRANSIT, AccountKind.CHANNEL_CLEARING):
            account_get_or_create(kind=kind, owner=channel_code)
        account_get_or_create(kind=AccountKind.CHANNEL_COST)
        _ENSURED_CHANNEL_ACCOUNTS.add(channel_code)


def lock_accounts(keys: set[tuple[str, str]], *, currency: str) -> dict[tuple[str, str], Account]:
    """Lock the accounts of a batch's postings in one statement, in id order (the global lock order), and
    return them by (kind, owner)."""
    ordered = sorted(keys)
    sql = (
        "SELECT * FROM ledger_account WHERE currency = %s AND (kind, owner) IN ("
        + ", ".join(["(%s, %s)"] * len(ordered))
        + ") ORDER BY id FOR NO KEY UPDATE"
    )
    params = [currency, *[v for key in ordered for v in key]]
    found = {(a.kind, a.owner): a for a in Account.objects.raw(sql, params)}
    missing = set(ordered) - set(found)
    if missing:  # a channel's or the bank's account not created yet: create it, then lock again in order
        for kind, owner in sorted(missing):
            account_get_or_create(kind=kind, owner=owner, currency=currency)
        found = {(a.kind, a.owner): a for a in Account.objects.raw(sql, params)}
    return found


_CACHE: dict[str, tuple[float, object]] = {}


def cached(key: str, load: Callable[[], T]) -> T:
    """Per-process cache for routing inputs that change slowly (channels, rates, calendar)."""
    ttl = settings.DISBURSEMENT_ROUTING_CACHE_SECONDS
    hit = _CACHE.get(key)
    if ttl > 0 and hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]  # type: ignore[return-value]
    value = load()
    _CACHE[key] = (time.monotonic(), value)
    return value


def _is_business_day(day) -> bool:
    """The stored calendar's answer (funding.selectors); a day not known to be one is no business day here."""
    return cached(f"business_day:{day.isoformat()}", lambda: calendar_is_business_day(day) is True)


def query_delay(query_count: int) -> timedelta:
    backoff = settings.DISBURSEMENT_QUERY_BACKOFF_SECONDS
    if query_count < len(backoff):
        return timedelta(seconds=backoff[query_count])
    return timedelta(seconds=settings.DISBURSEMENT_QUERY_INTERVAL_SECONDS)


def next_query_time(*, attempt: PayoutAttempt, channel: Channel, now: datetime) -> datetime:
    """The next status query on the back-off schedule. Past the channel's cut-off the statement takes over:
    the next look is at the review deadline."""
    when = now + query_delay(attempt.query_count)
    if channel.service_end is not None:
        local = timezone.localtime(now)
        cutoff = local.replace(
            hour=channel.service_end.hour, minute=channel.service_end.minute, second=0, microsecond=0
        )
        if when > cutoff:
            when = attempt.review_due_at
    return max(min(when, attempt.review_due_at), now)


@dataclass(frozen=True)
class RoutingInputs:
    """What routing reads besides the payout: loaded once per batch (and cached per process for a few seconds)."""

    channels: list[Channel]
    rates: dict
    business_day: bool


def channel_codes(ids: set[int]) -> dict[int, str]:
    """Channel codes by id (codes never change once created: settlement 0009 refuses it in the database), from
    the per-process cache unless a channel is newer than it."""
    codes = {c.pk: c.code for c in cached("channels", lambda: list(Channel.objects.all()))}
    if not ids <= codes.keys():
        codes = dict(Channel.objects.values_list("pk", "code"))
    return codes


def routing_inputs(*, now: datetime) -> RoutingInputs:
    return RoutingInputs(
        channels=cached("channels", lambda: list(Channel.objects.all())),
        rates=cached("rates", lambda: channel_success_rates(now=now)),
        business_day=_is_business_day(timezone.localdate(now)),
    )


def route_payout(
    *, payout: Payout, attempts: list[PayoutAttempt], now: datetime, inputs: RoutingInputs | None = None
) -> RoutingDecision:
    inputs = inputs or routing_inputs(now=now)
    last = max(attempts, key=lambda a: a.number) if attempts else None
    same = last.channel_id if last is not None and last.decision == ErrorDecision.RETRY_SAME_CHANNEL else None
    return route_choose(
        amount=payout.amount,
        bank_code=payout.bank_code,
        channels=inputs.channels,
        tried_channel_ids={a.channel_id for a in attempts},
        rates=inputs.rates,
        now=now,
        business_day=inputs.business_day,
        retry=bool(attempts),
        same_channel_id=same,
        unhealthy_below=settings.DISBURSEMENT_UNHEALTHY_BELOW,
        min_samples=settings.DISBURSEMENT_UNHEALTHY_MIN_SAMPLES,
    )


def emit_payout_event(payout: Payout, type_: str) -> None:
    event_emit(
        company=payout.advance.company,
        type=type_,
        resource_type="payout",
        resource_id=payout.public_id,
        version=payout.version,
        data=payout_representation(payout),
    )
