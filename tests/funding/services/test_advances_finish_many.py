"""advances_finish_disbursement: many advances finished set-based, exact values, a constant number of
statements whatever their number, idempotent."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from funding.models import Advance, AdvanceStatus, AuditEvent, Payout, WebhookEvent
from funding.services.advances import advance_finish_disbursement, advance_request, advances_finish_disbursement
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance
from ledger.services import account_get_or_create
from tests.factories import company_with_line, payout_inputs
from tests.money_helpers import (
    advance_start_disbursing,
    money_snapshot,
    payout_abandon,
    payout_resolve,
    payout_send,
)

pytestmark = pytest.mark.django_db

D = Decimal
WED = date(2026, 11, 25)  # the business date of tests.factories; due Thursday: one fee day


def _advance(company, *amounts: str, outcomes: list[str]) -> Advance:
    """An advance disbursing, its payouts sent and resolved: 'succeeded', 'failed' (sent, final failure),
    'abandoned' (never sent, final failure) or 'open' (sent, no answer yet)."""
    advance = advance_request(company=company, external_id=f"ORD-{Advance.objects.count() + 1}",
                              amount=sum((D(a) for a in amounts), D("0")), payouts=payout_inputs(*amounts))
    advance_start_disbursing(advance=advance)
    for payout, outcome in zip(Payout.objects.filter(advance=advance).order_by("sequence"), outcomes, strict=True):
        if outcome == "abandoned":
            payout_abandon(payout=payout)
            continue
        payout_send(payout=payout, business_date=WED)
        if outcome != "open":
            payout_resolve(payout=payout, outcome=outcome, business_date=WED)
    return advance


def _fee_receivable(company) -> Decimal:
    return Account.objects.get(kind=AccountKind.FEE_RECEIVABLE, owner=company.code).balance


def test_many_advances_finish_at_once_each_by_its_own_outcome(business_day):
    one, _ = company_with_line()
    two, _ = company_with_line()
    a = _advance(one, "100.00", "200.00", outcomes=["succeeded", "succeeded"])
    b = _advance(one, "1000.00", "500.00", outcomes=["succeeded", "failed"])
    c = _advance(two, "400.00", outcomes=["abandoned"])
    d = _advance(two, "2000.00", "3000.00", outcomes=["succeeded", "open"])
    e = _advance(two, "700.00", outcomes=["open"])
    audit_before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    finished = advances_finish_disbursement(advance_ids=[e.pk, d.pk, c.pk, b.pk, a.pk, a.pk], business_date=WED)

    # Nothing new for E (its payout still open, no success): left as it is, not returned.
    assert [x.pk for x in finished] == [a.pk, b.pk, c.pk, d.pk]
    expected = {
        a.pk: (AdvanceStatus.DISBURSED, D("300.00"), D("300.00"), D("0.09"), 2),
        b.pk: (AdvanceStatus.PARTIALLY_DISBURSED, D("1000.00"), D("1000.00"), D("0.30"), 2),
        c.pk: (AdvanceStatus.FAILED, D("0.00"), D("0.00"), D("0.00"), 2),
        # Due for what actually left (contract 1.7): D stays disbursing with the succeeded part and its fee.
        d.pk: (AdvanceStatus.DISBURSING, D("2000.00"), D("2000.00"), D("0.60"), 2),
        e.pk: (AdvanceStatus.DISBURSING, D("0.00"), D("0.00"), D("0.00"), 1),
    }
    for advance in finished:  # what the caller gets is what was stored
        assert (advance.status, advance.disbursed_amount, advance.advanced_disbursed, advance.fee,
                advance.version) == expected[advance.pk]
    stored = {
        v.pk: (v.status, v.disbursed_amount, v.advanced_disbursed, v.fee, v.version)
        for v in Advance.objects.filter(pk__in=expected)
    }
    assert stored == expected
    fees = dict(JournalTransaction.objects.filter(kind="advance.fee").values_list("reference", "kind"))
    assert sorted(fees) == sorted([f"{a.public_id}:fee", f"{b.public_id}:fee", f"{d.public_id}:fee"])
    assert (_fee_receivable(one), _fee_receivable(two)) == (D("0.39"), D("0.60"))
    assert Account.objects.get(kind=AccountKind.FEE_INCOME).balance == D("0.99")
    audit = {
        e.object_id: (e.action, e.before, e.after, e.actor_label, e.company_id)
        for e in AuditEvent.objects.filter(pk__gt=audit_before)
    }
    assert len(audit) == AuditEvent.objects.filter(pk__gt=audit_before).count() == 4
    assert audit[a.public_id] == ("advance.disbursed", {"status": "disbursing"},
                                  {"status": "disbursed", "fee": "0.09"}, "disbursement", one.pk)
    assert audit[b.public_id] == ("advance.partially_disbursed", {"status": "disbursing"},
                                  {"status": "partially_disbursed", "fee": "0.30"}, "disbursement", one.pk)
    assert audit[c.public_id] == ("advance.failed", {"status": "disbursing"},
                                  {"status": "failed", "fee": "0.00"}, "disbursement", two.pk)
    assert audit[d.public_id] == (
        "advance.settled_in_part", {"status": "disbursing", "disbursed_amount": "0.00", "fee": "0.00"},
        {"status": "disbursing", "fee": "0.60", "disbursed_amount": "2000.00"}, "disbursement", two.pk)
    events = sorted(WebhookEvent.objects.filter(type__startswith="advance.").values_list(
        "type", "resource_id", "resource_version", "company_id"))
    assert events == sorted([("advance.disbursed", a.public_id, 2, one.pk),
                             ("advance.partially_disbursed", b.public_id, 2, one.pk),
                             ("advance.failed", c.public_id, 2, two.pk)])
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []

    # Idempotent: again, nothing changes at all.
    before = money_snapshot()
    assert advances_finish_disbursement(advance_ids=[a.pk, b.pk, c.pk, d.pk, e.pk], business_date=WED) == []
    assert money_snapshot() == before


def test_a_later_part_posts_its_fee_under_its_own_reference_next_to_first_fees(business_day):
    company, _ = company_with_line()
    d = _advance(company, "2000.00", "3000.00", outcomes=["succeeded", "open"])
    assert advance_finish_disbursement(advance_id=d.pk, business_date=WED).fee == D("0.60")
    payout_resolve(payout=Payout.objects.get(advance=d, sequence=2), outcome="succeeded", business_date=WED)
    f = _advance(company, "1000.00", outcomes=["succeeded"])

    finished = advances_finish_disbursement(advance_ids=[d.pk, f.pk], business_date=WED)

    assert [(x.status, x.fee, x.version) for x in finished] == [
        (AdvanceStatus.DISBURSED, D("1.50"), 3), (AdvanceStatus.DISBURSED, D("0.30"), 2)]
    # D's `:fee` journal exists (the ledger says so): its new part is `:fee:v3`; F's first is `:fee`.
    assert dict(JournalTransaction.objects.filter(kind="advance.fee").values_list("reference", "kind")).keys() == {
        f"{d.public_id}:fee", f"{d.public_id}:fee:v3", f"{f.public_id}:fee"}
    assert _fee_receivable(company) == D("1.80")
    assert trial_balance() == {"CNY": D("0.00")} and account_totals_drift() == []


def test_the_fee_only_grows_here(business_day):
    company, _ = company_with_line()
    a = _advance(company, "1000.00", outcomes=["succeeded"])
    # As after a return past the due date, which keeps the charged fee: a recomputation comes out lower.
    Advance.objects.filter(pk=a.pk).update(fee=D("5.00"))
    Payout.objects.filter(advance=a).update(value_date=date(2026, 11, 26))  # no fee day left
    (finished,) = advances_finish_disbursement(advance_ids=[a.pk], business_date=WED)
    assert (finished.status, finished.fee) == (AdvanceStatus.DISBURSED, D("5.00"))
    assert not JournalTransaction.objects.filter(kind="advance.fee").exists()  # nothing added: nothing posted


def _statements(fn) -> int:
    with CaptureQueriesContext(connection) as queries:
        fn()
    return len(queries.captured_queries)


@pytest.mark.parametrize("n", [1, 8])
def test_the_statements_do_not_grow_with_the_advances(business_day, n):
    """Savepoint, fee receivables locked, advances locked, payouts aggregated, fee journals looked up, advances
    updated, fee accounts read, one INSERT of the fee journals and their entries, one of the audit rows, one of the
    events per status reached (two here), savepoint released: 12, for one advance or eight of several companies."""
    account_get_or_create(kind=AccountKind.FEE_INCOME)  # the bank's, created by the first fee ever posted
    companies = [company_with_line()[0] for _ in range(3)]
    ids = []
    for i in range(n):
        ids.append(_advance(companies[i % 3], "100.00", "50.00", outcomes=["succeeded", "succeeded"]).pk)
    last = _advance(companies[0], "100.00", "50.00", outcomes=["succeeded", "failed"])
    statements = _statements(lambda: advances_finish_disbursement(advance_ids=[*ids, last.pk], business_date=WED))
    assert statements == 12
    assert Advance.objects.filter(pk__in=ids, status=AdvanceStatus.DISBURSED).count() == n
    assert Advance.objects.get(pk=last.pk).status == AdvanceStatus.PARTIALLY_DISBURSED
    # Finished already: savepoint, the fee receivables lock, the locked read finding none, release.
    assert _statements(lambda: advances_finish_disbursement(advance_ids=[*ids, last.pk], business_date=WED)) == 4


def test_the_set_based_fee_is_the_fee_rule_of_advance_fee_of_payouts(business_day):
    """The finish sums line part x fee days in SQL and rounds once in Python; advance_fee_of_payouts is the rule.
    Value dates before and on the due date, one missing (the business date stands in), a failed payout, and a
    six-decimal rate: both give the same fee, to the fen (ignoring the value dates would give 0.48)."""
    from funding.services.advances import advance_fee_of_payouts

    company, _ = company_with_line()
    advance = _advance(company, "1000.00", "333.33", "250.00", "80.00",
                       outcomes=["succeeded", "succeeded", "succeeded", "failed"])
    Advance.objects.filter(pk=advance.pk).update(daily_fee_rate=D("0.000305"))
    payouts = list(Payout.objects.filter(advance=advance).order_by("sequence"))
    due = Advance.objects.get(pk=advance.pk).due_date
    value_dates = [None, date(2026, 11, 20), due, date(2026, 11, 24)]
    for payout, value_date in zip(payouts, value_dates, strict=True):
        Payout.objects.filter(pk=payout.pk).update(value_date=value_date)
    stored = Advance.objects.get(pk=advance.pk)
    succeeded = list(Payout.objects.filter(advance=advance, status="succeeded"))
    rule = advance_fee_of_payouts(payouts=succeeded, daily_fee_rate=stored.daily_fee_rate,
                                  business_date=stored.business_date, due_date=stored.due_date)

    (finished,) = advances_finish_disbursement(advance_ids=[advance.pk], business_date=WED)

    # 1000.00 x 1 day (no value date: WED -> THU) + 333.33 x 6 days (11-20 -> 11-26) + 250.00 x 0 (left on the due
    # date) = 2999.98; x 0.000305 = 0.9149939 -> 0.91.
    assert rule == D("0.91")
    assert finished.fee == rule
    assert Advance.objects.get(pk=advance.pk).fee == D("0.91")
