"""Real concurrency on PostgreSQL: repayment collection and new own-funds advances at once (contract 1.7).

Each thread has its own database connection (Django connections are per thread) and its own transactions. The
case is the operator's: 30,000.00 advanced yesterday (fee 9.00) is due today and 230,009.00 is in the settlement
account. Whichever commits first, the collection takes the 30,009.00 whole, the own-funds parts of the new
advances together take exactly the 200,000.00 that is free, and the settlement account never goes negative.
"""

import random
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction

from funding.models import Advance, AdvanceStatus, BusinessDay, Company
from funding.selectors import own_funds_available
from funding.services.advances import advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import Repayment
from settlement.services.nightly import JobOutcome, repayments_collect_run
from tests.factories import calendar_and_business_date, company_with_line, payout_inputs
from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal
WED, THU = date(2026, 11, 25), date(2026, 11, 26)
ROUNDS = 6
ADVANCES_PER_ROUND = 3  # 3 x 100,000.00 asked of own funds where 200,000.00 is free


@pytest.fixture
def no_dispatch(settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False


def _due_today(round_no: int) -> tuple[Company, Advance]:
    """A company whose 30,000.00 of Wednesday (fee 9.00) is due on Thursday, the business date; 230,009.00 in."""
    BusinessDay.objects.update(current=WED)
    company, _ = company_with_line(code=f"RACE-{round_no}", limit="1000000.00")
    advance = disbursed_advance(company, "30000.00", external_id=f"DUE-{round_no}")
    assert (advance.fee, advance.due_date) == (D("9.00"), THU)
    BusinessDay.objects.update(current=THU)
    credit_settlement(company, "230009.00")
    assert own_funds_available(company=company, business_date=THU) == D("200000.00")
    return company, advance


def _own_request(company: Company, external_id: str, amount: str) -> Callable[[], Advance]:
    payouts = payout_inputs(amount)
    return lambda: advance_request(
        company=company, external_id=external_id, amount=D(amount), payouts=payouts, use_own_funds=True
    )


def _race(calls: list[Callable[[], object]], jitter: random.Random) -> list[object]:
    """Run the calls at once, one thread (and connection) each, each after a small random delay."""
    barrier = threading.Barrier(len(calls))
    delays = [jitter.uniform(0, 0.03) for _ in calls]
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            time.sleep(delays[index])
            results[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001 - every outcome is asserted on below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _assert_due_whole_and_own_funds_exact(company: Company, due_advance: Advance, advances: list[Advance]) -> None:
    repayment = Repayment.objects.get(company=company)
    assert (repayment.amount, repayment.penalty, repayment.fee, repayment.principal) == (
        D("30009.00"), D("0.00"), D("9.00"), D("30000.00"))
    due_advance.refresh_from_db()
    assert due_advance.status == AdvanceStatus.REPAID
    assert (due_advance.fee_repaid, due_advance.principal_repaid) == (D("9.00"), D("30000.00"))
    assert sum((a.own_funds_amount for a in advances), D("0.00")) == D("200000.00")
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("230009.00"), D("30009.00"), D("200000.00"))
    assert settlement.available == D("0.00")  # never negative: exactly nothing left
    assert own_funds_available(company=company, business_date=THU) == D("0.00")


def test_collection_and_own_funds_advances_race_the_due_repayment_is_always_whole(no_dispatch):
    calendar_and_business_date()
    jitter = random.Random(20261201)  # fixed seed: the same delays every run
    for round_no in range(ROUNDS):
        company, due_advance = _due_today(round_no)
        calls: list[Callable[[], object]] = [repayments_collect_run]
        calls += [_own_request(company, f"OWN-{round_no}-{i}", "100000.00") for i in range(ADVANCES_PER_ROUND)]
        calls = jitter.sample(calls, len(calls))  # who is released first changes from round to round

        results = _race(calls, jitter)

        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors
        outcomes = [r for r in results if isinstance(r, JobOutcome)]
        advances = [r for r in results if isinstance(r, Advance)]
        assert len(outcomes) == 1 and len(advances) == ADVANCES_PER_ROUND
        # Own funds first, each part either what was asked or what was left: 100,000.00, 100,000.00, 0.00.
        assert sorted(a.own_funds_amount for a in advances) == [D("0.00"), D("100000.00"), D("100000.00")]
        assert all(a.own_funds_amount + a.advanced_amount == D("100000.00") for a in advances)
        _assert_due_whole_and_own_funds_exact(company, due_advance, advances)
    assert Repayment.objects.count() == ROUNDS
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def test_a_collection_waits_for_an_own_funds_advance_in_flight_and_then_takes_the_due_whole(no_dispatch):
    """Forced order: the advance holds its own funds (uncommitted); the collection starting meanwhile waits on
    the settlement account and, after the COMMIT, still finds the 30,009.00 that is due."""
    calendar_and_business_date()
    company, due_advance = _due_today(0)
    held, commit = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def request() -> None:
        try:
            with transaction.atomic():
                results["advance"] = _own_request(company, "OWN-IN-FLIGHT", "230009.00")()
                held.set()
                commit.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001 - asserted below
            results["advance"] = exc
            held.set()
        finally:
            connection.close()

    def collect() -> None:
        try:
            results["collection"] = repayments_collect_run()
        except Exception as exc:  # noqa: BLE001 - asserted below
            results["collection"] = exc
        finally:
            connection.close()

    requester = threading.Thread(target=request)
    requester.start()
    assert held.wait(timeout=30)
    collector = threading.Thread(target=collect)
    collector.start()
    deadline = time.monotonic() + 10
    while not _waiting_on_a_lock("FOR NO KEY UPDATE OF a"):
        assert time.monotonic() < deadline, "the collection never reached the settlement account"
        time.sleep(0.02)
    assert collector.is_alive()
    commit.set()
    requester.join(timeout=30)
    collector.join(timeout=30)

    advance = results["advance"]
    assert isinstance(advance, Advance), advance
    assert isinstance(results["collection"], JobOutcome), results["collection"]
    assert (advance.own_funds_amount, advance.advanced_amount) == (D("200000.00"), D("30009.00"))
    _assert_due_whole_and_own_funds_exact(company, due_advance, [advance])


def _waiting_on_a_lock(query_fragment: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query LIKE %s",
            [f"%{query_fragment}%"],
        )
        return cursor.fetchone()[0] > 0


def test_an_account_with_nothing_free_is_neither_waited_for_nor_held(no_dispatch):
    """A company with no money of its own at the bank: its advance reads the settlement account without locking
    it, so a collection (or anything) holding the account's row does not delay it, and holds nothing there."""
    calendar_and_business_date()
    BusinessDay.objects.update(current=THU)
    company, _ = company_with_line(code="NOTHING-FREE", limit="1000000.00")
    locked, release = threading.Event(), threading.Event()

    def hold_the_account() -> None:
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(kind=AccountKind.SETTLEMENT, owner=company.code)
                locked.set()
                release.wait(timeout=30)
        finally:
            locked.set()
            connection.close()

    holder = threading.Thread(target=hold_the_account)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")  # waiting on the row would fail the test
            advance = _own_request(company, "NOTHING-FREE-1", "1000.00")()
    finally:
        release.set()
        holder.join(timeout=30)
    assert (advance.own_funds_amount, advance.advanced_amount) == (D("0.00"), D("1000.00"))
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("0.00"), D("0.00"), D("0.00"))
