"""Real-time channels with several requests in flight (adapter_settings max_in_flight, settlement/adapters/inflight.py).

The adapters here are test doubles at the edge (a bank's API); the last tests run the engine against the
simulated bank, which keeps its side in PostgreSQL, with the requests on several threads.
"""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from settlement.adapters import inflight
from settlement.adapters.base import ChannelAdapter, QueryResult, SubmitResult
from settlement.models import Channel, PayoutAttempt


class CountingBank(ChannelAdapter):
    """Answers every payout; counts how many requests are open at once and on which threads they run."""

    def __init__(self, channel, *, meet: int = 0, fail: frozenset[str] = frozenset()):
        super().__init__(channel)
        self.lock = threading.Lock()
        self.open = self.peak = self.calls = 0
        self.threads: set[int] = set()
        self.fail = fail
        # The first `meet` requests wait for each other (or time out, answering unknown): proof that that many
        # are in flight at once.
        self.meet = meet
        self.barrier = threading.Barrier(meet, timeout=10) if meet else None

    def _enter(self) -> int:
        with self.lock:
            self.open += 1
            self.calls += 1
            self.peak = max(self.peak, self.open)
            self.threads.add(threading.get_ident())
            return self.calls

    def _leave(self) -> None:
        with self.lock:
            self.open -= 1

    def submit(self, attempt):
        call = self._enter()
        try:
            if call <= self.meet:
                self.barrier.wait()
            if attempt.serial in self.fail:
                raise TimeoutError(f"read timed out for {attempt.serial}")
            return SubmitResult("succeeded", raw={"serial": attempt.serial})
        finally:
            self._leave()

    def query(self, serial):
        call = self._enter()
        try:
            if call <= self.meet:
                self.barrier.wait()
            if serial in self.fail:
                raise ConnectionResetError("reset by peer")
            return QueryResult("succeeded")
        finally:
            self._leave()


def _channel(**adapter_settings) -> Channel:
    return Channel(code="RT", adapter="tests.settlement.adapters.test_inflight.CountingBank",
                   adapter_settings=adapter_settings)


def _attempts(n: int) -> list[PayoutAttempt]:
    return [PayoutAttempt(serial=f"S{i:03d}", amount=Decimal("1.00")) for i in range(n)]


def test_a_real_time_batch_keeps_max_in_flight_requests_open_and_answers_every_serial():
    bank = CountingBank(_channel(max_in_flight=5), meet=5)
    attempts = _attempts(23)

    answers = bank.submit_batch(attempts)

    assert list(answers) == [a.serial for a in attempts]
    assert answers["S007"] == SubmitResult("succeeded", raw={"serial": "S007"})
    assert {a.status for a in answers.values()} == {"succeeded"}
    assert bank.peak == 5  # five met at the barrier, never a sixth: five lanes
    assert threading.get_ident() not in bank.threads
    assert bank.open == 0


def test_one_request_that_raises_is_unknown_and_the_others_are_answered():
    bank = CountingBank(_channel(max_in_flight=4), fail=frozenset({"S002", "S009"}))

    answers = bank.submit_batch(_attempts(12))

    assert answers["S002"] == SubmitResult("unknown", raw={"error": "read timed out for S002"})
    assert answers["S009"] == SubmitResult("unknown", raw={"error": "read timed out for S009"})
    assert sorted(s for s, a in answers.items() if a.status == "succeeded") == [
        f"S{i:03d}" for i in range(12) if i not in (2, 9)
    ]


def test_queries_in_flight_leave_out_the_serials_whose_query_failed():
    bank = CountingBank(_channel(max_in_flight=3), meet=3, fail=frozenset({"S001"}))

    answers = bank.query_batch(["S000", "S001", "S002", "S003"])

    assert answers == {s: QueryResult("succeeded") for s in ("S000", "S002", "S003")}
    assert bank.peak == 3 and threading.get_ident() not in bank.threads


@pytest.mark.parametrize("setting", [None, 1, 0, -4, "eight", [8]])
def test_without_a_valid_limit_above_one_requests_go_one_after_the_other_on_the_callers_thread(setting):
    bank = CountingBank(_channel() if setting is None else _channel(max_in_flight=setting))

    answers = bank.submit_batch(_attempts(6))

    assert len(answers) == 6 and bank.max_in_flight == 1
    assert bank.threads == {threading.get_ident()}
    assert bank.peak == 1


def test_an_exception_escaping_a_call_is_raised_after_every_other_item_ran():
    seen = []

    def call(item):
        seen.append(item)
        if item == 3:
            raise RuntimeError("boom")
        return item * 10

    with pytest.raises(RuntimeError, match="boom"):
        inflight.each_in_flight(call, list(range(10)), limit=3)
    assert sorted(seen) == list(range(10))
    assert inflight.each_in_flight(lambda i: i * 10, list(range(7)), limit=3) == [0, 10, 20, 30, 40, 50, 60]


def test_a_caller_interrupted_while_waiting_leaves_no_new_request_starting_behind_it():
    import signal
    import time

    class SoftTimeLimit(Exception):  # what Celery's soft time limit raises in the task's thread
        pass

    started = []
    lock = threading.Lock()

    def slow(item):
        with lock:
            started.append(item)
        time.sleep(0.2)  # the interrupt comes mid-request, 100 ms from any lane's next start
        return item

    def interrupt(signum, frame):
        raise SoftTimeLimit()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(SoftTimeLimit):
            inflight.each_in_flight(slow, list(range(20)), limit=2)
        at_interrupt = len(started)
        time.sleep(0.5)  # two more requests per lane, had they gone on
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert at_interrupt == 4  # two lanes, each on its second request
    assert len(started) == at_interrupt  # the requests out finished; none started after the caller left


def test_the_lanes_see_the_callers_log_context():
    from config.ops.context import request_id_var

    token = request_id_var.set("req-7f3a")
    try:
        seen = inflight.each_in_flight(lambda _: (request_id_var.get(), threading.get_ident()), list(range(6)),
                                       limit=3)
    finally:
        request_id_var.reset(token)
    assert {request_id for request_id, _ in seen} == {"req-7f3a"}
    assert threading.get_ident() not in {thread for _, thread in seen}
    assert request_id_var.get() is None


def test_a_forked_child_gets_its_own_pool(monkeypatch):
    parent = inflight._shared_pool()
    assert inflight._shared_pool() is parent
    monkeypatch.setattr(inflight.os, "getpid", lambda: -1)  # what a child of Celery's prefork sees: a new pid
    child = inflight._shared_pool()
    assert child is not parent
    monkeypatch.undo()
    assert inflight._shared_pool() is not child  # back in the "parent": its pid differs again, a new pool


# -- the engine against the simulated bank, eight requests in flight


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_engine_pays_each_payout_once_with_eight_requests_in_flight(advance_factory, channels):
    from funding.models import Payout
    from settlement.models import SimulatedChannelTransfer
    from settlement.services.disbursement import advance_dispatch
    from tests.settlement.conftest import channel_configure

    for channel in channels.values():
        channel_configure(channel, max_in_flight=8, batch_file=False)
    amounts = [f"{100 + i}.00" for i in range(40)]
    advance = advance_factory(*amounts)
    backends = _backends()

    assert advance_dispatch(advance_id=advance.pk) == 40

    advance.refresh_from_db()
    assert advance.status == "disbursed"
    assert advance.disbursed_amount == sum(Decimal(a) for a in amounts)
    payouts = list(Payout.objects.filter(advance=advance).prefetch_related("attempts"))
    assert {p.status for p in payouts} == {"succeeded"}
    serials = sorted(a.serial for p in payouts for a in p.attempts.all())
    assert len(serials) == 40
    assert sorted(SimulatedChannelTransfer.objects.values_list("serial", flat=True)) == serials
    # Under CONN_MAX_AGE=0 (the tests' setting) the channel threads left no connection open behind them.
    assert _backends() == backends


@pytest.mark.parametrize(("pool", "expected"), [(None, 8), ({"max_size": 4}, 3), ({"max_size": 1}, 1),
                                                ({"max_size": 20}, 8)])
def test_the_simulated_bank_never_takes_more_threads_than_the_connection_pool_spares(monkeypatch, pool, expected):
    from settlement.adapters.simulated import SimulatedChannelAdapter

    options = {k: v for k, v in (connection.settings_dict.get("OPTIONS") or {}).items() if k != "pool"}
    if pool is not None:
        options["pool"] = pool
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)  # what DATABASE_POOL=true configures

    assert SimulatedChannelAdapter(_channel(max_in_flight=8)).max_in_flight == expected
