"""Property-based (hypothesis, stateful): random sequences of advance requests, cancellations, deposits,
disbursement outcomes, repayments, limit changes and freezes against one credit line.

After every step: trial balance zero (and PostgreSQL's deferred balance check fired on the spot), account
totals equal their entries, outstanding = advance-receivable balance, reserved = advanced parts still held,
own-funds holds = own parts still held, no counter negative, usage within the CHECK's ceiling. Every request
is also predicted from the model (own funds first, then the line) and must be accepted or refused exactly so.

Each example runs inside a savepoint that is rolled back, so examples do not see each other.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from funding.errors import CreditLineFrozen, EngineError, InsufficientLimit
from funding.models import Advance, AdvanceStatus, ChangeRequestKind, CreditLine, CreditLineStatus, Payout, PayoutStatus
from funding.services.advances import advance_cancel, advance_finish_disbursement, advance_request
from funding.services.credit_lines import change_request_approve, change_request_propose, credit_line_freeze
from ledger.models import Account, AccountKind
from ledger.selectors import account_totals_drift, trial_balance
from tests.factories import BUSINESS_DATE, company_with_line, payout_inputs, staff_user
from tests.money_helpers import (
    advance_repay_in_full,
    advance_start_disbursing,
    expected_own_funds_held,
    expected_reserved,
    money_snapshot,
    payout_abandon,
    payout_resolve,
    payout_send,
    settlement_deposit,
)

D = Decimal
CENT = D("0.01")
TODAY = BUSINESS_DATE


def _split(cents: int, parts: int) -> list[str]:
    parts = max(1, min(parts, cents))
    base, rest = divmod(cents, parts)
    amounts = [base] * (parts - 1) + [base + rest]
    return [str(D(a) * CENT) for a in amounts]


class AdvanceLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._n = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(limit_cents=st.sampled_from([100_000, 500_000, 2_000_000]), own_cents=st.integers(0, 300_000))
    def setup(self, limit_cents: int, own_cents: int) -> None:
        self.maker, self.checker = staff_user(), staff_user()
        self.company, line = company_with_line(limit=str(D(limit_cents) * CENT), maker=self.maker,
                                               checker=self.checker)
        self.line_id = line.pk
        if own_cents:
            settlement_deposit(company=self.company, amount=D(own_cents) * CENT, business_date=TODAY)

    # --- helpers ----------------------------------------------------------------------------------------

    def _line(self) -> CreditLine:
        return CreditLine.objects.get(pk=self.line_id)

    def _account(self, kind: str) -> Account:
        return Account.objects.get(kind=kind, owner=self.company.code)

    def _advances(self, *states: str) -> list[Advance]:
        return list(Advance.objects.filter(company=self.company, status__in=states).order_by("pk"))

    def _payouts(self, *, advance_states: list[str], states: list[str]) -> list[Payout]:
        return list(Payout.objects.filter(advance__company=self.company, advance__status__in=advance_states,
                                          status__in=states).order_by("pk"))

    # --- rules --------------------------------------------------------------------------------------------

    @rule(cents=st.integers(1, 800_000), parts=st.integers(1, 3), use_own=st.booleans())
    def request(self, cents: int, parts: int, use_own: bool) -> None:
        amount = D(cents) * CENT
        line, settlement = self._line(), self._account(AccountKind.SETTLEMENT)
        own = min(amount, max(settlement.available, D(0))) if use_own else D("0.00")
        headroom = line.effective_limit - line.reserved - line.outstanding
        self._n += 1
        before = money_snapshot()
        try:
            advance = advance_request(company=self.company, external_id=f"P-{self._n}", amount=amount,
                                      payouts=payout_inputs(*_split(cents, parts)), use_own_funds=use_own)
        except EngineError as exc:
            assert money_snapshot() == before
            if line.status == CreditLineStatus.FROZEN:
                assert isinstance(exc, CreditLineFrozen)
            else:
                assert isinstance(exc, InsufficientLimit) and exc.code == "insufficient_limit"
                assert amount - own > headroom
            return
        assert line.status == CreditLineStatus.ACTIVE
        assert amount - own <= headroom
        assert (advance.own_funds_amount, advance.advanced_amount) == (own, amount - own)

    @rule(cents=st.integers(1, 500_000))
    def deposit(self, cents: int) -> None:
        settlement_deposit(company=self.company, amount=D(cents) * CENT, business_date=TODAY)

    @rule(data=st.data())
    def cancel(self, data) -> None:
        candidates = self._advances(AdvanceStatus.RESERVED)
        if candidates:
            advance = data.draw(st.sampled_from(candidates))
            advance_cancel(company=self.company, public_id=advance.public_id, actor_label="prop")

    @rule(data=st.data())
    def start_disbursing(self, data) -> None:
        candidates = self._advances(AdvanceStatus.RESERVED)
        if candidates:
            advance = advance_start_disbursing(advance=data.draw(st.sampled_from(candidates)))
            for payout in Payout.objects.filter(advance=advance).order_by("sequence"):
                payout_send(payout=payout, business_date=TODAY)

    @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "succeeded", "failed", "retry"]))
    def resolve_payout(self, data, outcome: str) -> None:
        candidates = self._payouts(advance_states=[AdvanceStatus.DISBURSING],
                                   states=[PayoutStatus.PROCESSING])
        if candidates:
            payout = payout_resolve(payout=data.draw(st.sampled_from(candidates)), outcome=outcome,
                                    business_date=TODAY)
            advance_finish_disbursement(advance_id=payout.advance_id, business_date=TODAY)

    @rule(data=st.data(), give_up=st.booleans())
    def retry_or_give_up(self, data, give_up: bool) -> None:
        candidates = self._payouts(advance_states=[AdvanceStatus.DISBURSING], states=[PayoutStatus.PENDING])
        if candidates:
            payout = data.draw(st.sampled_from(candidates))
            if give_up:
                payout_abandon(payout=payout)
                advance_finish_disbursement(advance_id=payout.advance_id, business_date=TODAY)
            else:
                payout_send(payout=payout, business_date=TODAY)

    @rule(data=st.data())
    def repay(self, data) -> None:
        candidates = self._advances(AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED)
        if candidates:
            advance = data.draw(st.sampled_from(candidates))
            due = advance.advanced_disbursed - advance.principal_repaid + advance.fee - advance.fee_repaid
            if due:
                settlement_deposit(company=self.company, amount=due, business_date=TODAY)
            advance_repay_in_full(advance=advance, business_date=TODAY)

    @rule(cents=st.integers(0, 2_500_000))
    def change_limit(self, cents: int) -> None:
        request = change_request_propose(credit_line=self._line(), kind=ChangeRequestKind.CHANGE_TERMS,
                                         proposed={"approved_limit": str(D(cents) * CENT)}, maker=self.maker,
                                         reason="property")
        change_request_approve(request=request, checker=self.checker, reason="ok")
        line = self._line()
        assert line.effective_limit == D(cents) * CENT
        assert line.limit_ceiling == max(line.effective_limit, line.reserved + line.outstanding)

    @rule()
    def freeze_or_unfreeze(self) -> None:
        line = self._line()
        if line.status == CreditLineStatus.ACTIVE:
            credit_line_freeze(credit_line=line, actor=self.maker, reason="property")
        elif line.status == CreditLineStatus.FROZEN:
            request = change_request_propose(credit_line=line, kind=ChangeRequestKind.UNFREEZE, proposed={},
                                             maker=self.maker, reason="property")
            change_request_approve(request=request, checker=self.checker)

    # --- invariants ---------------------------------------------------------------------------------------

    @invariant()
    def ledger_balances(self) -> None:
        assert set(trial_balance().values()) <= {D("0.00")}
        assert account_totals_drift() == []
        # Fire PostgreSQL's deferred per-journal balance check now instead of at COMMIT (which never comes).
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    @invariant()
    def counters_match_the_ledger(self) -> None:
        if not hasattr(self, "line_id"):
            return
        line = self._line()
        assert min(line.reserved, line.outstanding, line.effective_limit) >= 0
        assert line.reserved + line.outstanding <= line.limit_ceiling
        assert line.limit_ceiling >= line.effective_limit
        # Contract 1.7: a bank part whose outcome is not yet known (out, not succeeded) stays reserved, so the
        # line's outstanding is the receivable less those parts.
        unknown_out = Payout.objects.filter(
            advance__company=self.company, funds_out=True,
        ).exclude(status=PayoutStatus.SUCCEEDED).aggregate(s=Sum("advanced_amount"))["s"] or 0
        assert line.outstanding == self._account(AccountKind.ADVANCE_RECEIVABLE).balance - unknown_out
        assert line.reserved == expected_reserved(line)
        settlement = self._account(AccountKind.SETTLEMENT)
        assert settlement.balance >= 0 and settlement.available >= 0
        assert settlement.debits_pending == expected_own_funds_held(self.company)
        fees_due = Advance.objects.filter(company=self.company).aggregate(
            f=Sum("fee"), r=Sum("fee_repaid"))
        fee_receivable = self._account(AccountKind.FEE_RECEIVABLE)
        assert fee_receivable.balance == (fees_due["f"] or 0) - (fees_due["r"] or 0)
        principal = Advance.objects.filter(company=self.company).aggregate(
            d=Sum("advanced_disbursed"), r=Sum("principal_repaid"))
        succeeded = Payout.objects.filter(
            advance__company=self.company, status=PayoutStatus.SUCCEEDED,
        ).aggregate(s=Sum("advanced_amount"))["s"] or 0
        # Outstanding = what succeeded payouts' bank parts paid, less principal repaid; the advances take in
        # each success (advance_finish_disbursement runs after every outcome here), open payouts or not.
        assert line.outstanding == succeeded - (principal["r"] or 0)
        assert line.outstanding == (principal["d"] or 0) - (principal["r"] or 0)


@pytest.mark.django_db
def test_random_sequences_keep_the_books_and_the_line_consistent(business_day):
    run_state_machine_as_test(
        AdvanceLedgerMachine,
        settings=settings(max_examples=30, stateful_step_count=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow], database=None),
    )


@pytest.mark.django_db
def test_deferred_balance_check_fires_on_set_constraints_immediate(business_day):
    """The invariant above relies on this: SET CONSTRAINTS ALL IMMEDIATE runs the pending balance checks."""
    from django.db import IntegrityError

    receivable = Account.objects.create(code="t:r", name="r", kind=AccountKind.ADVANCE_RECEIVABLE,
                                        type="asset", owner="T")
    income = Account.objects.create(code="t:i", name="i", kind=AccountKind.FEE_INCOME, type="income",
                                    owner="T")
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO ledger_journaltransaction (kind, description, business_date,"
                           " reference, created_at) VALUES ('t', '', %s, 't:x', now()) RETURNING id",
                           [date(2026, 11, 25)])
            journal_id = cursor.fetchone()[0]
            for account, direction, amount in ((receivable, "D", "1.00"), (income, "C", "0.99")):
                cursor.execute("INSERT INTO ledger_entry (transaction_id, account_id, direction, amount,"
                               " currency) VALUES (%s, %s, %s, %s, 'CNY')",
                               [journal_id, account.pk, direction, amount])
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
