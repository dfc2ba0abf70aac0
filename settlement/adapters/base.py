"""The channel adapter interface. A bank adds a real channel by writing one class and naming it on a Channel.

The engine calls an adapter only outside database transactions. Anything an adapter raises while
submitting (timeout, reset connection, 5xx, an answer it cannot parse) is read by the engine as `unknown`:
the payment may or may not have been made.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from settlement.adapters.inflight import each_in_flight

if TYPE_CHECKING:
    from settlement.models import Channel, PayoutAttempt

SubmitStatus = Literal["accepted", "succeeded", "failed", "unknown"]
QueryStatus = Literal["succeeded", "failed", "processing", "not_found"]


@dataclass(frozen=True)
class SubmitResult:
    status: SubmitStatus
    code: str = ""  # the channel's own failure code when status == "failed"
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    status: QueryStatus
    code: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatementRow:
    serial: str
    amount: Decimal
    status: Literal["succeeded", "failed", "returned"]
    code: str = ""
    value_date: date | None = None
    line: int | None = field(default=None, compare=False)  # the line of an uploaded file (reports name it)


class ChannelError(Exception):
    """A transport-level failure (timeout, reset, 5xx, unparseable): the outcome is unknown."""


class ChannelAdapter:
    """Base class. `channel` is the configured Channel row; its adapter_settings configure the adapter."""

    def __init__(self, channel: "Channel") -> None:
        self.channel = channel
        self.settings: dict[str, Any] = dict(channel.adapter_settings or {})

    # True for channels that take a batch file (批量代付, as BEPS offers) in one request: the engine then hands
    # them a whole batch at once. Real-time channels keep `submit` per payout (the default submit_batch loops).
    native_batch = False

    @property
    def max_in_flight(self) -> int:
        """How many of this channel's requests the default submit_batch and query_batch keep open at once
        (adapter_settings "max_in_flight", per worker process: the bank's own limit on concurrent requests shared
        out among the processes; default 1, one after the other). Above 1, `submit` and `query` run on several
        threads at once (settlement/adapters/inflight.py) and must be thread-safe: no state shared between calls
        but what is safe to share (an HTTP session)."""
        try:
            return max(1, int(self.settings.get("max_in_flight", 1)))
        except (TypeError, ValueError):
            return 1

    def submit(self, attempt: "PayoutAttempt") -> SubmitResult:
        raise NotImplementedError

    def query(self, serial: str) -> QueryResult:
        raise NotImplementedError

    def submit_batch(self, attempts: Sequence["PayoutAttempt"]) -> dict[str, SubmitResult]:
        """Hand many attempts to the channel; the answers by serial. A serial missing from the answers, or an
        exception raised for the whole batch, is read as `unknown` by the engine (maybe paid).

        The attempts are the instances the claim wrote (serial, amount, fee, channel) with `attempt.payout` as
        the claim read it: its instruction (beneficiary, account, bank, amounts) is exact; its `status` is not
        kept up to date and must not be relied on here.

        The default sends each attempt with `submit`, up to `max_in_flight` at once; an exception of one attempt
        makes that one unknown only.
        """

        def submit_one(attempt: "PayoutAttempt") -> SubmitResult:
            try:
                return self.submit(attempt)
            except Exception as exc:  # noqa: BLE001 - timeout, reset, 5xx, garbage: all mean "maybe paid"
                return SubmitResult("unknown", raw={"error": str(exc)[:200]})

        results = each_in_flight(submit_one, attempts, limit=self.max_in_flight)
        return {attempt.serial: result for attempt, result in zip(attempts, results, strict=True)}

    def query_batch(self, serials: Sequence[str]) -> dict[str, QueryResult]:
        """Status of many serials; the answers by serial. A serial missing from the answers tells nothing (it is
        asked again later). The default asks `query` for each, up to `max_in_flight` at once."""

        def query_one(serial: str) -> QueryResult | None:
            try:
                return self.query(serial)
            except Exception:  # noqa: BLE001 - a failed query tells nothing; ask again later
                return None

        results = each_in_flight(query_one, serials, limit=self.max_in_flight)
        return {serial: result for serial, result in zip(serials, results, strict=True) if result is not None}

    def statement(self, statement_date: date) -> list[StatementRow]:
        raise NotImplementedError


def adapter_for(channel: "Channel") -> ChannelAdapter:
    from django.utils.module_loading import import_string

    cls = import_string(channel.adapter)
    if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
        raise TypeError(f"{channel.adapter} is not a ChannelAdapter")
    return cls(channel)
