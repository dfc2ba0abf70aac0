"""Real concurrency on PostgreSQL: many connections, one credit line, holds never over-commit.

Each thread has its own database connection (Django connections are per thread) and its own transaction;
a barrier releases them together so that the conditional UPDATEs really race.
"""

import random
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from funding.errors import EngineError, InsufficientLimit
from funding.models import Advance, AdvanceStatus, CreditLine, Payout
from funding.services.advances import advance_request
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from tests.factories import calendar_and_business_date, company_with_line, payout_inputs
from tests.money_helpers import settlement_deposit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal
THREADS = 32


def _race(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls at once, one thread (and one connection) each; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
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


def _request(company, external_id: str, amount: Decimal) -> Callable[[], Advance]:
    payouts = payout_inputs(str(amount))
    return lambda: advance_request(company=company, external_id=external_id, amount=amount, payouts=payouts)


def test_32_connections_never_over_commit_one_line():
    calendar_and_business_date()
    company, line = company_with_line(limit="1000000.00")
    rng = random.Random(20261125)  # fixed seed: the same amounts every run
    amounts = [D(rng.randint(1_000_000, 8_000_000)) / 100 for _ in range(THREADS)]  # 10,000.00..80,000.00
    assert sum(amounts) > D("1000000.00")  # the race must produce rejections

    results = _race([_request(company, f"ORD-{i}", amount) for i, amount in enumerate(amounts)])

    accepted = [r for r in results if isinstance(r, Advance)]
    rejected = [r for r in results if not isinstance(r, Advance)]
    assert accepted and rejected
    assert all(isinstance(r, InsufficientLimit) and r.code == "insufficient_limit"
               for r in rejected), rejected
    accepted_total = sum((a.advanced_amount for a in accepted), D("0.00"))
    line.refresh_from_db()
    assert accepted_total <= line.effective_limit == D("1000000.00")
    assert line.reserved == accepted_total
    assert line.outstanding == D("0.00")
    # Each rejection was right at the moment it happened: once it had failed, the line could not take it.
    smallest_rejected = min(amounts[i] for i, r in enumerate(results) if not isinstance(r, Advance))
    assert line.available < smallest_rejected
    # Nothing of a rejected request remains: only the accepted advances and their payouts exist.
    assert Advance.objects.count() == len(accepted)
    assert set(Advance.objects.values_list("status", flat=True)) == {AdvanceStatus.RESERVED}
    assert Payout.objects.aggregate(s=Sum("advanced_amount"))["s"] == accepted_total
    assert sorted(a.amount for a in accepted) == sorted(
        amounts[i] for i, r in enumerate(results) if isinstance(r, Advance))


def test_concurrent_requests_never_over_use_the_settlement_balance():
    calendar_and_business_date()
    company, line = company_with_line(limit="50000.00")
    settlement_deposit(company=company, amount="100000.00", business_date=date(2026, 11, 25))
    rng = random.Random(7)
    amounts = [D(rng.randint(500_000, 1_500_000)) / 100 for _ in range(16)]  # 5,000.00..15,000.00
    assert sum(amounts) > D("150000.00")

    results = _race([_request(company, f"OWN-{i}", amount) for i, amount in enumerate(amounts)])

    accepted = [r for r in results if isinstance(r, Advance)]
    rejected = [r for r in results if not isinstance(r, Advance)]
    assert all(isinstance(r, EngineError) and r.code == "insufficient_limit" for r in rejected), rejected
    own_total = sum((a.own_funds_amount for a in accepted), D("0.00"))
    advanced_total = sum((a.advanced_amount for a in accepted), D("0.00"))
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code)
    line = CreditLine.objects.get(pk=line.pk)
    assert settlement.debits_pending == own_total <= settlement.credits_posted == D("100000.00")
    assert settlement.available >= 0
    assert line.reserved == advanced_total <= D("50000.00")
    # Own funds go first: the line is only used once the balance is exhausted.
    if advanced_total:
        assert settlement.available == D("0.00")
    for advance in accepted:
        payouts = list(Payout.objects.filter(advance=advance))
        assert sum((p.own_funds_amount for p in payouts), D(0)) == advance.own_funds_amount
        assert sum((p.advanced_amount for p in payouts), D(0)) == advance.advanced_amount
    assert trial_balance() == {"CNY": D("0.00")}
    assert account_totals_drift() == []


def test_concurrent_duplicates_create_one_advance():
    calendar_and_business_date()
    company, line = company_with_line(limit="1000.00")

    results = _race([_request(company, "SAME", D("100.00")) for _ in range(8)])

    accepted = [r for r in results if isinstance(r, Advance)]
    assert len(accepted) == 1
    others = [r for r in results if r not in accepted]
    assert all(getattr(r, "code", None) == "duplicate_external_id" for r in others), results
    assert CreditLine.objects.get(pk=line.pk).reserved == D("100.00")


def test_a_request_waits_for_end_of_day_to_start_and_is_then_refused():
    """End of day marks the date closing (uncommitted); a request arriving meanwhile must not slip through
    on the old date: it waits for the business day row and is refused once closing commits."""
    from django.db import transaction

    from funding.errors import BusinessDayClosed
    from funding.models import BusinessDay
    from funding.services.calendar import business_day_mark_closing

    calendar_and_business_date()
    company, line = company_with_line(limit="1000.00")
    closing_started, commit_closing = threading.Event(), threading.Event()

    def end_of_day() -> None:
        try:
            with transaction.atomic():
                business_day_mark_closing(day=BusinessDay.objects.get())
                closing_started.set()
                commit_closing.wait(timeout=30)
        finally:
            connection.close()

    eod = threading.Thread(target=end_of_day)
    eod.start()
    assert closing_started.wait(timeout=10)
    outcome: list[object] = []

    def request() -> None:
        try:
            outcome.append(_request(company, "LATE", D("10.00"))())
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome.append(exc)
        finally:
            connection.close()

    requester = threading.Thread(target=request)
    requester.start()
    requester.join(timeout=1)
    assert requester.is_alive(), "the request must wait for end of day's change to the business day"
    commit_closing.set()
    eod.join(timeout=30)
    requester.join(timeout=30)

    assert len(outcome) == 1 and isinstance(outcome[0], BusinessDayClosed)
    assert Advance.objects.count() == 0
    assert CreditLine.objects.get(pk=line.pk).reserved == D("0.00")


def test_end_of_day_waits_for_a_request_in_flight_which_keeps_its_date():
    """A request that began before end of day finishes on the old date; closing begins only after its COMMIT."""
    from django.db import transaction

    from funding.models import BusinessDay
    from funding.services.calendar import business_day_mark_closing

    calendar_and_business_date()
    company, line = company_with_line(limit="1000.00")
    line_locked, release_line = threading.Event(), threading.Event()
    events: list[str] = []

    def hold_the_line() -> None:
        # Another transaction holds the line's row: the request blocks on its hold, inside its transaction.
        try:
            with transaction.atomic():
                CreditLine.objects.select_for_update().get(pk=line.pk)
                line_locked.set()
                release_line.wait(timeout=30)
        finally:
            connection.close()

    def request() -> None:
        try:
            advance = _request(company, "IN-FLIGHT", D("10.00"))()
            events.append(f"request committed on {advance.business_date.isoformat()}")
        finally:
            connection.close()

    def end_of_day() -> None:
        try:
            with transaction.atomic():
                business_day_mark_closing(day=BusinessDay.objects.get())
                events.append("closing marked")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_line)
    holder.start()
    assert line_locked.wait(timeout=10)
    requester = threading.Thread(target=request)
    requester.start()
    deadline = time.monotonic() + 10
    while not _waiting_on_a_lock("advance_reserve"):
        assert time.monotonic() < deadline, "the request never reached the line's row"
        time.sleep(0.02)
    eod = threading.Thread(target=end_of_day)
    eod.start()
    eod.join(timeout=1)
    assert eod.is_alive(), "end of day must wait for the request in flight"
    release_line.set()
    for thread in (holder, requester, eod):
        thread.join(timeout=30)

    # Both went through (the order of the two appends after the COMMIT is a race of threads, not asserted).
    assert sorted(events) == ["closing marked", "request committed on 2026-11-25"]
    assert Advance.objects.get(external_id="IN-FLIGHT").business_date == date(2026, 11, 25)
    assert BusinessDay.objects.get().closing is True
    assert CreditLine.objects.get(pk=line.pk).reserved == D("10.00")


def _waiting_on_a_lock(query_fragment: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{query_fragment}%"],
        )
        return cursor.fetchone()[0] > 0


def test_32_connections_never_exceed_the_daily_cap():
    """The daily cap is held in the same conditional UPDATE as the exposure limit: racing requests never
    accept more than the cap on one business date, and each refusal names the cap's remainder."""
    calendar_and_business_date()
    company, line = company_with_line(limit="5000000.00", daily_cap="500000.00")
    rng = random.Random(20261201)
    amounts = [D(rng.randint(1_000_000, 6_000_000)) / 100 for _ in range(THREADS)]  # 10,000.00..60,000.00
    assert sum(amounts) == D("1114232.02")  # above the cap, within the limit: only the cap can refuse

    results = _race([_request(company, f"CAP-{i}", amount) for i, amount in enumerate(amounts)])

    accepted = [r for r in results if isinstance(r, Advance)]
    rejected = [r for r in results if not isinstance(r, Advance)]
    assert accepted and rejected
    assert all(isinstance(r, InsufficientLimit) and set(r.details) == {"available", "requested", "daily_remaining"}
               for r in rejected), rejected
    accepted_total = sum((a.advanced_amount for a in accepted), D("0.00"))
    line.refresh_from_db()
    assert accepted_total <= D("500000.00")
    assert line.advanced_today == line.reserved == accepted_total
    assert line.advanced_on == date(2026, 11, 25)
    smallest_rejected = min(amounts[i] for i, r in enumerate(results) if not isinstance(r, Advance))
    assert D("500000.00") - line.advanced_today < smallest_rejected
    assert Advance.objects.count() == len(accepted)
    assert Payout.objects.aggregate(s=Sum("advanced_amount"))["s"] == accepted_total
