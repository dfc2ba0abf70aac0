"""Set-based dispatch: batches of payouts claimed, sent and applied with a bounded number of statements."""

import os
import re
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from config.fsm import TransitionConflict, fsm_update, fsm_update_exactly, transition_sources, transition_target
from funding.models import Advance, Payout, WebhookEvent
from funding.representations import advance_representation, payout_representation
from ledger.models import AccountKind
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from settlement.adapters.base import adapter_for
from settlement.adapters.simulated import SimulatedChannelAdapter
from settlement.models import PayoutAttempt, SimulatedChannelTransfer
from settlement.services.disbursement import (
    advance_dispatch,
    advance_dispatch_batch,
    attempts_poll_due,
    payouts_claim_batch,
)
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)


class StatementCounter:
    def __init__(self):
        self.count = 0
        self.sqls = []

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        self.sqls.append(sql[:90].replace("\n", " "))
        return execute(sql, params, many, context)


def _dispatch_counted(advance_id: int) -> tuple[int, int, float]:
    counter = StatementCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        sent = advance_dispatch(advance_id=advance_id)
    return sent, counter.count, time.perf_counter() - started


def test_statements_per_payout_stay_bounded_for_a_200_payout_advance(advance_factory):
    n = 200
    advance = advance_factory(*["10.00"] * n)
    sent, statements, seconds = _dispatch_counted(advance.pk)
    assert sent == n
    advance.refresh_from_db()
    assert advance.status == "disbursed"
    assert Payout.objects.filter(advance=advance, status="succeeded").count() == n
    assert PayoutAttempt.objects.filter(status="succeeded").count() == n
    assert WebhookEvent.objects.filter(type="payout.succeeded").count() == n
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []
    print(f"\n{n} payouts: {statements} statements ({statements / n:.2f}/payout), {seconds:.3f}s")
    assert statements / n <= 8


@pytest.mark.skipif(not os.environ.get("MEASURE_DISPATCH"), reason="measurement: MEASURE_DISPATCH=1")
def test_measure_a_1000_payout_advance(advance_factory, monkeypatch):
    from settlement.services.disbursement import cycle

    phases: dict[str, float] = {}
    def timing(name, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0) + time.perf_counter() - started
        return timed

    for name in ("payouts_claim_batch", "attempts_submit_batch", "attempts_apply_batch", "advance_try_finish"):
        monkeypatch.setattr(cycle, name, timing(name, getattr(cycle, name)))
    n = 1000
    advance = advance_factory(*["10.00"] * n)
    sent, statements, seconds = _dispatch_counted(advance.pk)
    print("\nMEASURE phases " + ", ".join(f"{k} {v:.3f}s" for k, v in phases.items()))
    assert sent == n
    assert Advance.objects.get(pk=advance.pk).status == "disbursed"
    print(f"\nMEASURE {n} payouts: {statements} statements ({statements / n:.2f}/payout), {seconds:.3f}s "
          f"({n / seconds:.0f} payouts/s)")


@pytest.mark.skipif(not os.environ.get("PROFILE_DISPATCH"), reason="profile: PROFILE_DISPATCH=1")
def test_profile_a_1000_payout_advance(advance_factory):
    import cProfile
    import pstats

    advance = advance_factory(*["10.00"] * 1000)
    timings = {}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = sql.split()[0] + " " + " ".join(w for w in sql.split()[1:6] if "_" in w)[:60]
            timings[key] = timings.get(key, 0) + time.perf_counter() - started

    profile = cProfile.Profile()
    with connection.execute_wrapper(timed):
        profile.enable()
        advance_dispatch(advance_id=advance.pk)
        profile.disable()
    for key, seconds in sorted(timings.items(), key=lambda kv: -kv[1])[:15]:
        print(f"SQL {seconds:.3f}s {key}")
    stats = pstats.Stats(profile).sort_stats(os.environ.get("PROFILE_SORT", "cumulative"))
    stats.print_stats(os.environ.get("PROFILE_FILTER", ""), 45)
    if os.environ.get("PROFILE_CALLERS"):
        stats.print_callers(os.environ["PROFILE_CALLERS"])


# The set-based transitions of the dispatch path, and the model field each moves.
SET_BASED = [
    (Payout, Payout.start_attempt),
    (Payout, Payout.mark_succeeded),
    (Payout, Payout.mark_unknown),
    (PayoutAttempt, PayoutAttempt.mark_succeeded),
    (PayoutAttempt, PayoutAttempt.mark_unknown),
]


@pytest.mark.parametrize(("model", "method"), SET_BASED, ids=lambda v: getattr(v, "__qualname__", str(v)))
def test_set_based_transitions_name_exactly_the_fsm_source_states(model, method):
    declared = [t for t in model._meta.get_field("status").get_all_transitions(model) if t.name == method.__name__]
    assert transition_sources(method) == sorted(str(t.source) for t in declared)
    assert {transition_target(method)} == {str(t.target) for t in declared}
    with CaptureQueriesContext(connection) as queries:
        fsm_update(model.objects.filter(pk__in=[-1]), method)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert f'SET "status" = \'{transition_target(method)}\'' in sql
    in_list = re.search(r'"status" IN \(([^)]*)\)', sql).group(1)
    assert sorted(v.strip().strip("'") for v in in_list.split(",")) == transition_sources(method)


def test_one_batch_commits_attempts_and_funds_out_before_the_channel_is_called(advance_factory, monkeypatch):
    advance = advance_factory(*["10.00"] * 5)
    seen = {}

    def submit_batch(self, attempts):
        # Outside any transaction, everything is committed already: a crash here can never forget the call.
        seen["in_atomic"] = connection.in_atomic_block
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM settlement_payoutattempt WHERE status = 'processing'")
            seen["attempts"] = cursor.fetchone()[0]
        seen["in_transit"] = account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS")
        seen["payouts"] = sorted(Payout.objects.filter(advance=advance).values_list("status", flat=True))
        raise ConnectionResetError("the channel hung up")  # the answer is lost

    monkeypatch.setattr(SimulatedChannelAdapter, "submit_batch", submit_batch)
    assert advance_dispatch_batch(advance_id=advance.pk) == 5
    assert seen == {"in_atomic": False, "attempts": 5, "in_transit": Decimal("50.00"), "payouts": ["processing"] * 5}
    # No clear answer: every attempt is unknown, and is never sent again, only queried.
    assert sorted(PayoutAttempt.objects.values_list("status", flat=True)) == ["unknown"] * 5
    assert sorted(Payout.objects.filter(advance=advance).values_list("status", flat=True)) == ["unknown"] * 5
    assert advance_dispatch(advance_id=advance.pk) == 0
    assert PayoutAttempt.objects.count() == 5 and SimulatedChannelTransfer.objects.count() == 0
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []


def test_concurrent_claims_take_disjoint_batches(advance_factory):
    advance = advance_factory(*["10.00"] * 6)
    locked = threading.Event()
    release = threading.Event()
    held = []

    def hold_first_three():
        try:
            with transaction.atomic():
                held.extend(
                    Payout.objects.select_for_update()
                    .filter(advance=advance)
                    .order_by("sequence")
                    .values_list("pk", flat=True)[:3]
                )
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_first_three)
    thread.start()
    try:
        assert locked.wait(10)
        claimed = payouts_claim_batch(advance_id=advance.pk, limit=6)  # skips the locked rows, never waits
    finally:
        release.set()
        thread.join()
    claimed_payouts = set(PayoutAttempt.objects.filter(pk__in=claimed.attempt_ids).values_list("payout_id", flat=True))
    assert len(claimed_payouts) == 3 and claimed_payouts.isdisjoint(held)
    rest = payouts_claim_batch(advance_id=advance.pk, limit=6)
    assert set(PayoutAttempt.objects.filter(pk__in=rest.attempt_ids).values_list("payout_id", flat=True)) == set(held)
    assert payouts_claim_batch(advance_id=advance.pk, limit=6) is None


def test_a_batch_with_failures_fails_over_and_every_outcome_is_booked_once(advance_factory, channels, settings):
    settings.DISBURSEMENT_BATCH_SIZE = 7
    channel_configure(channels["BEPS"], failure_rate=0.5, failure_codes=["BE-ACCT-FROZEN"])
    n = 20
    advance = advance_factory(*["10.00"] * n)
    assert advance_dispatch(advance_id=advance.pk) == n + PayoutAttempt.objects.filter(status="failed").count()
    advance.refresh_from_db()
    assert advance.status == "disbursed"
    failed = PayoutAttempt.objects.filter(status="failed")
    bank = adapter_for(channels["BEPS"])
    # The simulated bank fails a serial when its first draw is under the failure rate: exactly those.
    assert set(failed.values_list("serial", flat=True)) == {
        a.serial for a in PayoutAttempt.objects.filter(number=1, channel__code="BEPS")
        if bank._rng(a.serial).random() < 0.5}
    assert set(failed.values_list("channel__code", "failure_code", "decision").distinct()) == (
        {("BEPS", "account_frozen", "failover")} if failed.exists() else set())
    assert set(PayoutAttempt.objects.filter(number=2).values_list("channel__code", "status").distinct()) == {
        ("IBPS", "succeeded")
    }
    assert PayoutAttempt.objects.filter(status="succeeded").count() == n
    assert WebhookEvent.objects.filter(type="payout.succeeded").count() == n
    assert WebhookEvent.objects.filter(type="advance.disbursed").count() == 1
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="IBPS") == Decimal("0.00")
    assert account_balance(kind=AccountKind.ADVANCE_RECEIVABLE, owner=advance.company.code) == Decimal("200.00")
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []


def test_set_based_events_render_what_the_api_shows(advance_factory):
    advance = advance_factory("10.00", "20.00", "30.00")
    advance_dispatch(advance_id=advance.pk)
    advance.refresh_from_db()
    for payout in Payout.objects.filter(advance=advance):
        event = WebhookEvent.objects.get(type="payout.succeeded", resource_id=payout.public_id)
        assert event.payload["data"] == payout_representation(payout)
        assert (event.payload["id"], event.payload["type"]) == (event.public_id, "payout.succeeded")
        assert (event.resource_type, event.resource_version, event.company_id) == (
            "payout", payout.version, advance.company_id)
    event = WebhookEvent.objects.get(type="advance.disbursed")
    assert event.payload["data"] == advance_representation(advance)
    assert event.resource_version == advance.version


def test_late_answers_are_queried_in_one_request_per_channel(advance_factory, channels, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    channel_configure(channels["BEPS"], late_success_rate=1, late_seconds=0)
    advance = advance_factory(*["10.00"] * 4)
    advance_dispatch(advance_id=advance.pk)
    assert sorted(PayoutAttempt.objects.values_list("status", flat=True)) == ["processing"] * 4
    calls = []
    original = SimulatedChannelAdapter.query_batch

    def query_batch(self, serials):
        calls.append(len(serials))
        return original(self, serials)

    monkeypatch.setattr(SimulatedChannelAdapter, "query_batch", query_batch)
    assert attempts_poll_due(now=timezone.now() + timedelta(seconds=16)) == 4
    assert calls == [4]
    assert sorted(PayoutAttempt.objects.values_list("status", "resolved_by")) == [("succeeded", "query")] * 4
    assert Advance.objects.get(pk=advance.pk).status == "disbursed"


def test_successes_found_by_the_status_queries_are_applied_set_based(advance_factory, channels):
    from datetime import timedelta

    from django.utils import timezone

    channel_configure(channels["BEPS"], late_success_rate=1, late_seconds=0)

    def poll_counted(n: int) -> tuple[int, Advance]:
        advance = advance_factory(*["10.00"] * n)
        advance_dispatch(advance_id=advance.pk)
        assert list(PayoutAttempt.objects.filter(payout__advance=advance).values_list("status", flat=True).distinct()
                    ) == ["processing"]
        counter = StatementCounter()
        with connection.execute_wrapper(counter):
            assert attempts_poll_due(now=timezone.now() + timedelta(seconds=16)) == n
        # The engine's: the simulated bank settles each late transfer with its own statements (its side, not ours).
        return len([sql for sql in counter.sqls if "simulatedchanneltransfer" not in sql]), advance

    poll_counted(2)  # warm the per-process caches (channel accounts, business date) as a running worker has them
    few, _ = poll_counted(3)
    many, advance = poll_counted(40)

    # One transaction for the successes, whatever their number (one by one: ~16 statements each): the due
    # attempts read, the successes applied together (locks, moves, query records, events, postings, line draw)
    # and the advance finished.
    assert few == many == 25
    attempts = PayoutAttempt.objects.filter(payout__advance=advance)
    assert set(attempts.values_list("status", "resolved_by", "query_count", "last_query")) == {
        ("succeeded", "query", 1, "succeeded")}
    assert Advance.objects.get(pk=advance.pk).status == "disbursed"
    assert WebhookEvent.objects.filter(type="payout.succeeded", resource_id__in=[
        p.public_id for p in Payout.objects.filter(advance=advance)]).count() == 40
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []


def test_a_new_advance_enqueues_one_dispatch_task_per_batch(advance_factory, settings, monkeypatch):
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **kw: sent.append((name, tuple(args))))
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = True
    settings.DISBURSEMENT_BATCH_SIZE = 100
    advance = advance_factory(*["1.00"] * 250)
    assert sent == [("settlement.dispatch_batch", (advance.pk,))] * 3


def test_timeouts_of_a_batch_become_unknown_set_based_and_are_queried_on_schedule(advance_factory, channels):
    from datetime import timedelta

    from django.utils import timezone

    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0.5)
    advance = advance_factory(*["10.00"] * 12)
    counter = StatementCounter()
    before = timezone.now()
    with connection.execute_wrapper(counter):
        assert advance_dispatch(advance_id=advance.pk) == 12
    assert counter.count <= 40  # a batch: not a dozen statements per payout
    attempts = list(PayoutAttempt.objects.all())
    assert {(a.status, a.query_count) for a in attempts} == {("unknown", 0)}
    assert all(before + timedelta(seconds=15) <= a.next_query_at <= timezone.now() + timedelta(seconds=15)
               for a in attempts)
    payouts = list(Payout.objects.filter(advance=advance))
    assert {(p.status, p.version) for p in payouts} == {("unknown", 3)}  # created 1, processing 2, unknown 3
    assert advance_dispatch(advance_id=advance.pk) == 0  # never sent again
    received = set(SimulatedChannelTransfer.objects.values_list("serial", flat=True))
    # Which requests were lost is the simulated bank's draw from each serial (its second number: the first
    # decided the timeout): the exact set, whatever the serials of this run.
    bank = adapter_for(channels["BEPS"])

    def lost(serial: str) -> bool:
        draws = bank._rng(serial)
        draws.random()
        return draws.random() < 0.5

    assert received == {a.serial for a in attempts if not lost(a.serial)}
    attempts_poll_due(now=timezone.now() + timedelta(seconds=16))
    for attempt in PayoutAttempt.objects.all():
        # Received ones are found (succeeded); lost ones are `not_found`: not a failure, still unknown.
        expected = ("succeeded", "succeeded") if attempt.serial in received else ("unknown", "not_found")
        assert (attempt.status, attempt.last_query) == expected
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []


def test_explicit_failures_of_a_batch_are_applied_set_based(advance_factory, channels):
    from funding.models import CreditLine
    from funding.services.calendar import business_date_current
    from ledger.models import Account
    from tests.factories import company_with_line
    from tests.money_helpers import settlement_deposit

    company, line = company_with_line()
    settlement_deposit(company=company, amount="30.00", business_date=business_date_current())
    channel_configure(channels["BEPS"], failure_rate=1, failure_codes=["BE-ACCT-FROZEN", "BE-ACCT-CLOSED"])
    advance = advance_factory(*["10.00"] * 10, company=company)
    assert sum(p.own_funds_amount for p in advance.payouts.all()) == Decimal("30.00")
    counter = StatementCounter()
    with connection.execute_wrapper(counter):
        advance_dispatch(advance_id=advance.pk)
    # Two batches (the first all failures, the retries) and the finish: ~100 statements, a dozen of them the
    # simulated IBPS's bank side (a real-time channel, one request per payout). One failure at a time would
    # be ~20 statements each.
    assert counter.count <= 130
    first = PayoutAttempt.objects.filter(number=1)
    assert set(first.values_list("channel__code", "status")) == {("BEPS", "failed")}
    bank = adapter_for(channels["BEPS"])

    def bank_code(serial: str) -> str:  # the simulated bank's draw: failure first, then which code
        draws = bank._rng(serial)
        draws.random()
        return draws.choice(["BE-ACCT-FROZEN", "BE-ACCT-CLOSED"])

    closed = {a.payout_id for a in first if a.channel_code == "BE-ACCT-CLOSED"}
    frozen = {a.payout_id for a in first if a.channel_code == "BE-ACCT-FROZEN"}
    assert closed == {a.payout_id for a in first if bank_code(a.serial) == "BE-ACCT-CLOSED"}
    assert closed | frozen == set(advance.payouts.values_list("pk", flat=True))
    assert set(first.filter(payout_id__in=closed).values_list("failure_code", "decision")) == (
        {("account_closed", "final_failure")} if closed else set())
    assert set(first.filter(payout_id__in=frozen).values_list("failure_code", "decision")) == (
        {("account_frozen", "failover")} if frozen else set())
    payouts = {p.pk: p for p in advance.payouts.all()}
    assert {pk for pk, p in payouts.items() if p.status == "failed"} == closed
    assert {pk for pk, p in payouts.items() if p.status == "succeeded"} == frozen
    assert all(payouts[pk].failure_code == "account_closed" and not payouts[pk].funds_out for pk in closed)
    assert set(PayoutAttempt.objects.filter(number=2).values_list("payout_id", flat=True)) == frozen
    assert set(PayoutAttempt.objects.filter(number=2).values_list("channel__code", "status")) == (
        {("IBPS", "succeeded")} if frozen else set())
    paid = [payouts[pk] for pk in frozen]
    line = CreditLine.objects.get(pk=line.pk)
    drawn = sum((p.advanced_amount for p in paid), Decimal("0.00"))
    assert (line.reserved, line.outstanding) == (Decimal("0.00"), drawn)
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)
    assert settlement.debits_pending == Decimal("0.00")
    assert settlement.balance == Decimal("30.00") - sum((p.own_funds_amount for p in paid), Decimal("0.00"))
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    assert WebhookEvent.objects.filter(type="payout.failed").count() == len(closed)
    assert WebhookEvent.objects.filter(type="payout.succeeded").count() == len(frozen)
    for pk in closed:
        event = WebhookEvent.objects.get(type="payout.failed", resource_id=payouts[pk].public_id)
        assert event.payload["data"] == payout_representation(payouts[pk])
    advance.refresh_from_db()
    expected = "failed" if not frozen else "disbursed" if not closed else "partially_disbursed"
    assert advance.status == expected
    assert trial_balance() == {"CNY": Decimal("0.00")} and account_totals_drift() == []


def test_a_claimed_batch_stores_each_attempt_exactly_as_routed(advance_factory, channels, settings):
    """The set-based INSERT (one JSON parameter) writes what the model would: amounts, fee, times, routing."""
    from datetime import UTC, datetime, timedelta

    from settlement.services.disbursement.common import next_query_time, route_payout

    for channel in channels.values():
        channel.fee_fixed, channel.fee_bps = Decimal("0.30"), Decimal("12.5")
        channel.save(update_fields=["fee_fixed", "fee_bps"])
    advance = advance_factory("1234.56", "0.01")
    now = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC)
    expected_routing = {
        p.pk: route_payout(payout=p, attempts=[], now=now).as_json()
        for p in Payout.objects.select_related("advance__company").filter(advance=advance)
    }
    batch = payouts_claim_batch(advance_id=advance.pk, limit=10, now=now)
    attempts = list(PayoutAttempt.objects.filter(pk__in=batch.attempt_ids).select_related("payout", "channel")
                    .order_by("pk"))
    assert [(a.amount, a.fee, a.number, a.status, a.serial) for a in attempts] == [
        (Decimal("1234.56"), Decimal("1.84"), 1, "processing", f"{attempts[0].payout.public_id}-1"),
        (Decimal("0.01"), Decimal("0.30"), 1, "processing", f"{attempts[1].payout.public_id}-1"),
    ]
    review = now + timedelta(seconds=settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS)
    assert [a.review_due_at for a in attempts] == [review, review]
    assert [a.next_query_at for a in attempts] == [
        next_query_time(attempt=a, channel=a.channel, now=now) for a in attempts]
    assert all(a.next_query_at > now for a in attempts)
    # Stamped by the claim's INSERT: the claim commits right before the channel call.
    assert [a.submitted_at for a in attempts] == [a.created_at for a in attempts]
    assert {a.payout_id: a.routing for a in attempts} == expected_routing


def test_a_set_based_transition_that_moves_fewer_rows_than_locked_undoes_its_transaction(advance_factory):
    advance = advance_factory("10.00", "20.00")
    first = Payout.objects.filter(advance=advance).order_by("pk").first()
    with pytest.raises(TransitionConflict, match="^1 of 2 payouts moved to processing$"):
        with transaction.atomic():
            fsm_update_exactly(Payout.objects.filter(pk=first.pk), Payout.start_attempt, expected=2)
    assert sorted(Payout.objects.filter(advance=advance).values_list("status", flat=True)) == ["pending"] * 2
    fsm_update_exactly(Payout.objects.filter(advance=advance), Payout.start_attempt, expected=2)
    assert sorted(Payout.objects.filter(advance=advance).values_list("status", flat=True)) == ["processing"] * 2
