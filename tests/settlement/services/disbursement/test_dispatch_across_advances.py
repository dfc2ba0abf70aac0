"""Batches across advances: a dispatch fills its batch with other advances' due payouts (FIFO, SKIP LOCKED) and
finishes the advances set-based; a cancel racing it never both cancels and sends; a crash between the steps
and a re-run change nothing."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from funding.errors import InvalidState
from funding.models import Advance, AuditEvent, CreditLine, Payout, WebhookEvent
from funding.services.advances import advance_cancel
from funding.services.calendar import business_date_current
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from ledger.services import account_get_or_create
from settlement.adapters.simulated import SimulatedChannelAdapter
from settlement.models import PayoutAttempt, SimulatedChannelTransfer
from settlement.services.disbursement import (
    advance_dispatch,
    advance_dispatch_batch,
    advances_finish_sweep,
    payouts_claim_batch,
)
from settlement.services.disbursement import claim as claim_module
from settlement.services.disbursement import cycle as cycle_module
from tests.factories import company_with_line
from tests.lock_helpers import outcome_of, wait_until_waiting
from tests.money_helpers import money_snapshot, settlement_deposit

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


class StatementCounter:
    """Statements of the engine, the simulated bank's own (its side of the channel call) left out."""

    def __init__(self):
        self.count = 0
        self.paused = False
        self.sqls: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if not self.paused:
            self.count += 1
            self.sqls.append(" ".join(sql.split())[:100])
        return execute(sql, params, many, context)


@pytest.fixture
def counted(monkeypatch):
    counter = StatementCounter()
    original = SimulatedChannelAdapter.submit_batch

    def submit_batch(self, attempts):
        counter.paused = True
        try:
            return original(self, attempts)
        finally:
            counter.paused = False

    monkeypatch.setattr(SimulatedChannelAdapter, "submit_batch", submit_batch)
    return counter


@pytest.fixture
def companies(business_day, channels):
    """Three companies; the first has 150.00 of its own funds (used before its line)."""
    made = [company_with_line()[0] for _ in range(3)]
    settlement_deposit(company=made[0], amount="150.00", business_date=business_date_current())
    account_get_or_create(kind=AccountKind.FEE_INCOME)  # the bank's, created by the first fee ever posted
    return made


def _small_advances(advance_factory, companies, n: int, amount: str = "100.00") -> list[Advance]:
    return [advance_factory(amount, company=companies[i % len(companies)]) for i in range(n)]


def test_one_dispatch_sends_and_finishes_many_small_advances(advance_factory, companies, counted):
    advances = _small_advances(advance_factory, companies, 12)
    own_first, own_second = advances[0], advances[3]  # the first company's: 100.00 own, then 50.00 own

    with connection.execute_wrapper(counted):
        assert advance_dispatch_batch(advance_id=advances[5].pk) == 12
    # Every advance's payout went in the one batch; every advance finished, set-based.
    assert sorted(Payout.objects.values_list("status", flat=True)) == ["succeeded"] * 12
    # Created 1, disbursing 2, disbursed 3; the fee is on the line's part: 100.00 x 0.0003 x 1 day, but the first
    # company's first advance was paid with its own funds and its second half (50.00 x 0.0003, half-up).
    fees = {own_first.pk: D("0.00"), own_second.pk: D("0.02")}
    assert {a.pk: (a.status, a.disbursed_amount, a.fee, a.version) for a in Advance.objects.all()} == {
        a.pk: ("disbursed", D("100.00"), fees.get(a.pk, D("0.03")), 3) for a in advances}
    assert PayoutAttempt.objects.filter(status="succeeded", resolved_by="submit").count() == 12
    assert SimulatedChannelTransfer.objects.count() == 12
    assert WebhookEvent.objects.filter(type="payout.succeeded").count() == 12
    assert sorted(WebhookEvent.objects.filter(type="advance.disbursed").values_list("resource_id", flat=True)) == (
        sorted(a.public_id for a in advances))
    assert AuditEvent.objects.filter(action="advance.disbursed").count() == 12
    assert JournalTransaction.objects.filter(kind="advance.fee").count() == 11  # no fee: no journal
    first = companies[0].code
    assert (own_first.own_funds_amount, own_second.own_funds_amount) == (D("100.00"), D("50.00"))
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=first)
    assert (settlement.balance, settlement.debits_pending) == (D("0.00"), D("0.00"))
    # Four advances of 100.00 each per company; the first company paid 150.00 of them itself.
    receivables = {c.code: account_balance(kind=AccountKind.ADVANCE_RECEIVABLE, owner=c.code) for c in companies}
    assert receivables == {first: D("250.00"), companies[1].code: D("400.00"), companies[2].code: D("400.00")}
    fees = {c.code: account_balance(kind=AccountKind.FEE_RECEIVABLE, owner=c.code) for c in companies}
    assert fees == {first: D("0.08"), companies[1].code: D("0.12"), companies[2].code: D("0.12")}
    lines = {line.company_id: (line.reserved, line.outstanding) for line in CreditLine.objects.all()}
    assert lines == {companies[0].pk: (D("0.00"), D("250.00")), companies[1].pk: (D("0.00"), D("400.00")),
                     companies[2].pk: (D("0.00"), D("400.00"))}
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == D("0.00")
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []

    # The other advances' own tasks find their payouts taken: one statement each, nothing changes.
    before = money_snapshot()
    for advance in advances:
        counted.count = 0
        with connection.execute_wrapper(counted):
            assert advance_dispatch_batch(advance_id=advance.pk) == 0
            assert advance_dispatch(advance_id=advance.pk) == 0
        assert counted.count == 2, counted.sqls
    assert money_snapshot() == before


def _batch_statements(advance_factory, companies, counted, n: int) -> int:
    advances = _small_advances(advance_factory, companies, n)
    counted.count = 0
    counted.sqls = []
    with connection.execute_wrapper(counted):
        assert advance_dispatch_batch(advance_id=advances[0].pk) == n
    assert Advance.objects.filter(pk__in=[a.pk for a in advances], status="disbursed").count() == n
    return counted.count


def test_the_statements_of_a_batch_do_not_grow_with_its_advances(advance_factory, companies, counted):
    """40 statements for a batch of one-payout advances of three companies, whether 3 or 30 advances: claim 17
    (candidates, the advance locked, the other reserved advances locked, its payouts locked, the others' payouts
    locked, their advances with their companies, advances moved, business date, 4 routing inputs uncached here,
    accounts locked, attempts, payouts moved, one own-funds release, funds-out journals with their entries), submit
    none (the claim's attempts are handed over as written), successes applied 12 (locks 2, channels, attempts and
    payouts moved, business date, accounts, journals with their entries, lines read, a line draw per line that paid:
    two, the first company's own funds paid all of its part, events), finish 11 (the cheap look, business date, fee
    receivables, advances locked, payouts aggregated, advances updated, fee journals looked up, fee accounts, fee
    journals with their entries, audit, events)."""
    # Own funds in every batch (one hold release), whatever its size.
    settlement_deposit(company=companies[0], amount="100000.00", business_date=business_date_current())
    # Warm the per-process caches (channel accounts, routing inputs) as a running worker has them.
    _batch_statements(advance_factory, companies, counted, 3)
    few = _batch_statements(advance_factory, companies, counted, 3)
    sqls = list(counted.sqls)
    many = _batch_statements(advance_factory, companies, counted, 30)
    assert few == many == 40, sqls
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_a_batch_locks_the_shared_rows_only_for_its_postings(advance_factory, companies, counted):
    """The rows every batch and the API's holds need (the companies' and the channel's accounts, the credit lines)
    are locked last in each transaction: after the claim's attempts and payout moves, after the successes'
    attempt and payout moves and events; only the postings, the line draws and the COMMIT follow."""
    settlement_deposit(company=companies[0], amount="100000.00", business_date=business_date_current())
    _batch_statements(advance_factory, companies, counted, 3)  # warm the per-process caches
    _batch_statements(advance_factory, companies, counted, 3)
    sqls = counted.sqls

    def at(prefix: str, after: int = -1) -> int:
        return next(i for i, sql in enumerate(sqls) if i > after and sql.startswith(prefix))

    lock = "SELECT * FROM ledger_account WHERE"
    claim_lock = at(lock)
    assert at("INSERT INTO settlement_payoutattempt") < claim_lock
    assert at('UPDATE "funding_payout" SET "status" = %s, "attempt_count"') < claim_lock
    # After the claim's lock: the own funds' hold released, the funds-out journals; then the successes.
    assert sqls[claim_lock + 1].startswith('UPDATE "ledger_account" SET "debits_pending"'), sqls
    assert sqls[claim_lock + 2].startswith("WITH input AS"), sqls
    apply_lock = at(lock, after=claim_lock)
    assert at('UPDATE "settlement_payoutattempt"', after=claim_lock) < apply_lock
    assert at("INSERT INTO funding_webhookevent", after=claim_lock) < apply_lock
    assert apply_lock < at("WITH input AS", after=apply_lock) < at('UPDATE "funding_creditline"', after=apply_lock)


def test_a_batch_of_a_hundred_one_payout_advances_stays_under_the_target(advance_factory, companies, counted):
    _batch_statements(advance_factory, companies, counted, 2)  # warm
    statements = _batch_statements(advance_factory, companies, counted, 100)
    # One batch, whatever its advances (the test above names the statements; here a line draw for each of the
    # three companies' lines: 41): 0.41 per payout against the target of <= 8.
    assert statements == 41, counted.sqls


def test_the_batch_takes_its_own_advance_first_then_the_oldest_others(advance_factory, companies):
    older = _small_advances(advance_factory, companies, 3)
    big = advance_factory(*["10.00"] * 4, company=companies[1])
    claimed = payouts_claim_batch(advance_id=big.pk, limit=6)
    payouts = set(PayoutAttempt.objects.filter(pk__in=claimed.attempt_ids).values_list("payout_id", flat=True))
    assert (claimed.locked, claimed.own) == (6, 4)
    assert payouts == set(Payout.objects.filter(advance__in=[big, older[0], older[1]]).values_list("pk", flat=True))
    assert Advance.objects.get(pk=older[2].pk).status == "reserved"  # not in this batch: still cancellable


def test_concurrent_batches_of_one_reserved_advance_take_disjoint_slices(
    advance_factory, companies, monkeypatch, settings
):
    settings.DISBURSEMENT_BATCH_SIZE = 4
    advance = advance_factory(*["10.00"] * 8, company=companies[1])
    inside, let_go = threading.Event(), threading.Event()
    original = claim_module.business_date_current

    def paused_business_date():  # the first batch stops inside its transaction, the advance locked
        if not inside.is_set():
            inside.set()
            let_go.wait(timeout=30)
        return original()

    monkeypatch.setattr(claim_module, "business_date_current", paused_business_date)
    sent: list[object] = []

    def run() -> None:
        sent.append(outcome_of(lambda: advance_dispatch_batch(advance_id=advance.pk)))

    first = threading.Thread(target=run)
    first.start()
    assert inside.wait(timeout=10)
    second = threading.Thread(target=run)  # waits for the advance, then takes the next slice, not nothing
    second.start()
    wait_until_waiting(1)
    let_go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert sent == [4, 4]
    assert sorted(Payout.objects.filter(advance=advance).values_list("status", flat=True)) == ["succeeded"] * 8
    assert PayoutAttempt.objects.count() == 8
    assert Advance.objects.get(pk=advance.pk).status == "disbursed"
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_a_cancel_holding_its_advance_keeps_its_payouts_out_of_the_batch(advance_factory, companies):
    victim, other = _small_advances(advance_factory, companies[:2], 2)
    cancelled, let_go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            with transaction.atomic():
                advance_cancel(company=victim.company, public_id=victim.public_id, actor_label="test")
                cancelled.set()  # the advance is locked and cancelled, not committed yet
                let_go.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=cancel)
    thread.start()
    try:
        assert cancelled.wait(timeout=10)
        # The batch would take both payouts; the victim's advance is locked by the cancel: skipped, not waited for.
        assert advance_dispatch_batch(advance_id=other.pk) == 1
    finally:
        let_go.set()
        thread.join(timeout=30)
    assert errors == []
    assert Advance.objects.get(pk=victim.pk).status == "cancelled"
    assert list(Payout.objects.filter(advance=victim).values_list("status", "attempt_count")) == [("cancelled", 0)]
    assert not PayoutAttempt.objects.filter(payout__advance=victim).exists()
    assert Advance.objects.get(pk=other.pk).status == "disbursed"
    lines = {line.company_id: (line.reserved, line.outstanding) for line in CreditLine.objects.all()}
    # The victim's own funds (the first company's 100.00) and line hold were given back by the cancel.
    assert lines[companies[0].pk] == (D("0.00"), D("0.00"))
    assert lines[companies[1].pk] == (D("0.00"), D("100.00"))
    settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=companies[0].code)
    assert (settlement.balance, settlement.debits_pending) == (D("150.00"), D("0.00"))
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_a_cancel_waits_for_the_batch_holding_its_advance_and_then_refuses(advance_factory, companies, monkeypatch):
    victim, other = _small_advances(advance_factory, companies[:2], 2)
    inside, let_go = threading.Event(), threading.Event()
    original = claim_module.business_date_current

    def paused_business_date():  # called inside the claim's transaction, after its locks
        inside.set()
        let_go.wait(timeout=30)
        return original()

    monkeypatch.setattr(claim_module, "business_date_current", paused_business_date)
    results: dict[str, object] = {}

    def run(name, fn) -> None:
        try:
            results[name] = fn()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results[name] = exc
        finally:
            connection.close()

    claimer = threading.Thread(target=run, args=("claim", lambda: advance_dispatch_batch(advance_id=other.pk)))
    claimer.start()
    assert inside.wait(timeout=10)
    canceller = threading.Thread(target=run, args=("cancel", lambda: advance_cancel(
        company=victim.company, public_id=victim.public_id, actor_label="test")))
    canceller.start()
    wait_until_waiting(1)  # the cancel queues for the advance the batch holds
    let_go.set()
    claimer.join(timeout=30)
    canceller.join(timeout=30)
    assert results["claim"] == 2
    assert isinstance(results["cancel"], InvalidState)
    assert Advance.objects.get(pk=victim.pk).status == "disbursed"
    assert PayoutAttempt.objects.filter(payout__advance=victim, status="succeeded").count() == 1
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_cancels_racing_batches_never_both_cancel_and_send(advance_factory, companies):
    advances = _small_advances(advance_factory, companies, 8)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(fn) -> None:
        try:
            start.wait(timeout=10)
            fn()
        except InvalidState:
            pass  # the batch took the advance first
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    def cancel_all() -> None:
        for advance in reversed(advances):
            try:
                advance_cancel(company=advance.company, public_id=advance.public_id, actor_label="test")
            except InvalidState:
                pass

    threads = [
        threading.Thread(target=run, args=(lambda: advance_dispatch(advance_id=advances[0].pk),)),
        threading.Thread(target=run, args=(lambda: advance_dispatch(advance_id=advances[1].pk),)),
        threading.Thread(target=run, args=(cancel_all,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    advance_dispatch(advance_id=advances[0].pk)  # whatever is left of the first two (a batch took it or not)
    advance_dispatch(advance_id=advances[1].pk)
    assert errors == []
    for advance in Advance.objects.filter(pk__in=[a.pk for a in advances]):
        sent = PayoutAttempt.objects.filter(payout__advance=advance).count()
        payouts = list(Payout.objects.filter(advance=advance).values_list("status", flat=True))
        if advance.status == "cancelled":
            assert (sent, payouts) == (0, ["cancelled"])
        else:
            assert (advance.status, sent, payouts) in (
                ("disbursed", 1, ["succeeded"]), ("reserved", 0, ["pending"]))
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_a_crash_before_the_channel_call_is_never_sent_again_by_a_rerun(advance_factory, companies):
    advances = _small_advances(advance_factory, companies, 6)
    claimed = payouts_claim_batch(advance_id=advances[2].pk, limit=100)  # committed; then the process dies
    assert len(claimed.attempt_ids) == 6
    before = money_snapshot()
    attempts = sorted(PayoutAttempt.objects.values_list("pk", "status"))
    for advance in advances:  # redelivered tasks
        assert advance_dispatch_batch(advance_id=advance.pk) == 0
    advances_finish_sweep()
    assert money_snapshot() == before
    assert sorted(PayoutAttempt.objects.values_list("pk", "status")) == attempts  # processing: only queried
    assert SimulatedChannelTransfer.objects.count() == 0


def test_a_crash_before_the_advances_finish_is_completed_by_the_sweep_once(advance_factory, companies, monkeypatch):
    advances = _small_advances(advance_factory, companies, 6)

    def crash(**kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(cycle_module, "advances_try_finish", crash)
    with pytest.raises(RuntimeError):
        advance_dispatch_batch(advance_id=advances[0].pk)
    monkeypatch.undo()
    # The payouts' outcomes are committed; the advances are not finished yet.
    assert sorted(Payout.objects.values_list("status", flat=True)) == ["succeeded"] * 6
    assert set(Advance.objects.values_list("status", flat=True)) == {"disbursing"}
    for advance in advances:  # redelivered tasks: nothing left to claim
        assert advance_dispatch_batch(advance_id=advance.pk) == 0
    assert advances_finish_sweep() == 6
    # The first company's two advances: its own funds paid 100.00 and 50.00 of them (fee 0.00, 0.02).
    assert sorted(Advance.objects.values_list("status", "fee")) == sorted(
        [("disbursed", D("0.00")), ("disbursed", D("0.02"))] + [("disbursed", D("0.03"))] * 4)
    assert WebhookEvent.objects.filter(type="advance.disbursed").count() == 6
    before = money_snapshot()
    assert advances_finish_sweep() == 0
    assert money_snapshot() == before
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_a_task_whose_advance_has_nothing_due_leaves_the_others_to_their_own_tasks(
    advance_factory, companies, counted
):
    """Only a task with payouts of its own fills its batch with others': one with none ends after one statement
    and claims nothing (the others' tasks, or the beat sweep, send them)."""
    done, waiting, other = _small_advances(advance_factory, companies, 3)
    assert advance_dispatch_batch(advance_id=done.pk) == 3  # its own payout, then the two others'
    later = _small_advances(advance_factory, companies, 2)
    counted.count = 0
    with connection.execute_wrapper(counted):
        assert advance_dispatch_batch(advance_id=done.pk) == 0
    assert counted.count == 1, counted.sqls
    assert sorted(Payout.objects.filter(advance__in=later).values_list("status", flat=True)) == ["pending"] * 2
    assert advance_dispatch_batch(advance_id=later[1].pk) == 2  # its own first, then the other one
    assert sorted(Payout.objects.values_list("status", flat=True)) == ["succeeded"] * 5
    assert set(Advance.objects.filter(status="disbursed").values_list("pk", flat=True)) == {
        done.pk, waiting.pk, other.pk, *(a.pk for a in later)}
