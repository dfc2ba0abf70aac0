"""Set-based dispatch: batches of payouts claimed, sent and applied with a bounded number of statements."""

import os
import time
from decimal import Decimal

import pytest
from django.db import connection

from funding.models import Advance, Payout, WebhookEvent
from ledger.selectors import account_totals_drift, trial_balance
from settlement.models import PayoutAttempt
from settlement.services.disbursement import advance_dispatch

pytestmark = pytest.mark.django_db(transaction=True)


class StatementCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
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
def test_measure_a_1000_payout_advance(advance_factory):
    n = 1000
    advance = advance_factory(*["10.00"] * n)
    sent, statements, seconds = _dispatch_counted(advance.pk)
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
    stats.print_stats(45)
    if os.environ.get("PROFILE_CALLERS"):
        stats.print_callers(os.environ["PROFILE_CALLERS"])
