"""Returns (退汇, contract 1.7): payout `returned`, postings, the fee rule, refunds, events, four eyes."""

import itertools
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from funding.errors import FourEyesViolation, InvalidState
from funding.models import Advance, AdvanceStatus, AuditEvent, BusinessDay, Payout, PayoutStatus
from funding.selectors import credit_line_view
from funding.services.advances import advance_finish_disbursement, advance_request
from funding.services.calendar import business_date_current
from ledger.models import AccountKind, JournalTransaction
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from settlement.models import (
    AttemptStatus,
    Channel,
    PayoutAttempt,
    PayoutReturn,
    PayoutReturnRequest,
    Repayment,
    RepaymentAllocation,
    ReturnSource,
)
from settlement.services.nightly import repayments_collect_run
from settlement.services.postings import payout_post_confirmed, payout_post_funds_out
from settlement.services.returns import (
    payout_return_approve,
    payout_return_book,
    payout_return_propose,
    payout_return_reject,
)
from tests.factories import company_with_line, payout_inputs, staff_user
from tests.funding.api.conftest import signed_client_for
from tests.settlement.nightly_helpers import available, balance, credit_settlement, ledger_fingerprint

pytestmark = pytest.mark.django_db

_seq = itertools.count(1)
DUE = date(2026, 11, 26)  # the advances of Wednesday 2026-11-25 are due on Thursday


def paid_advance(company, *amounts: str, use_own_funds: bool = False) -> Advance:
    """An advance whose payouts all succeeded through channel TESTCH, with real attempts (serial po_...-1)."""
    total = sum((Decimal(a) for a in amounts), Decimal(0))
    advance = advance_request(
        company=company, external_id=f"RET{next(_seq)}", amount=total, payouts=payout_inputs(*amounts),
        use_own_funds=use_own_funds,
    )
    channel, _ = Channel.objects.get_or_create(code="TESTCH", defaults={"name": "Test", "adapter": "tests.fake"})
    business_date = business_date_current()
    with transaction.atomic():
        advance = Advance.objects.select_for_update().get(pk=advance.pk)
        advance.start_disbursing()
        advance.save(update_fields=["status"])
        for payout in advance.payouts.order_by("sequence"):
            serial = f"{payout.public_id}-1"
            payout.start_attempt()
            payout.attempt_count = 1
            payout_post_funds_out(payout=payout, channel=channel, serial=serial, business_date=business_date)
            attempt = PayoutAttempt.objects.create(
                payout=payout, number=1, serial=serial, channel=channel, amount=payout.amount
            )
            attempt.mark_succeeded()
            attempt.resolved_by = "submit"
            attempt.save()
            payout.mark_succeeded()
            payout.save()
            payout_post_confirmed(payout=payout, channel=channel, serial=serial, fee=Decimal("0"),
                                  business_date=business_date)
    return advance_finish_disbursement(advance_id=advance.pk, business_date=business_date)


def second_payout(advance) -> Payout:
    return advance.payouts.get(sequence=2)


def set_business_date(day: date) -> None:
    BusinessDay.objects.update(current=day)


def book(payout) -> PayoutReturn:
    booked = payout_return_book(payout_id=payout.pk, source=ReturnSource.STATEMENT, actor_label="test")
    assert booked.created
    return booked.payout_return


def line_figures(company) -> tuple[str, str]:
    view = credit_line_view(company=company)
    return view["outstanding"], view["available"]


def test_return_before_due_date_recomputes_fee_and_frees_the_line(business_day):
    company, line = company_with_line()  # limit 1,000,000.00, 0.0003 a day
    advance = paid_advance(company, "60000.00", "40000.00")
    assert (advance.status, advance.fee) == (AdvanceStatus.DISBURSED, Decimal("30.00"))  # 100000 x 0.0003 x 1
    assert line_figures(company) == ("100000.00", "900000.00")
    version = advance.version

    returned = book(second_payout(advance))  # booked on 2026-11-25, before the due date

    advance.refresh_from_db()
    assert advance.returned_amount == Decimal("40000.00")
    assert (advance.disbursed_amount, advance.advanced_disbursed) == (Decimal("60000.00"), Decimal("60000.00"))
    assert advance.fee == Decimal("18.00")  # 60000 x 0.0003 x 1
    assert advance.outstanding_amount == Decimal("60018.00")
    assert (advance.status, advance.version) == (AdvanceStatus.DISBURSED, version + 1)
    assert line_figures(company) == ("60000.00", "940000.00")
    payout = second_payout(advance)
    assert (payout.status, payout.funds_out) == (PayoutStatus.RETURNED, False)
    assert (returned.amount, returned.principal_released, returned.principal_refunded) == (
        Decimal("40000.00"), Decimal("40000.00"), Decimal("0.00"))
    assert (returned.fee_before, returned.fee_after, returned.fee_refunded) == (
        Decimal("30.00"), Decimal("18.00"), Decimal("0.00"))
    assert returned.business_date == date(2026, 11, 25)
    # The journal: Dr channel clearing 40000.00, Dr fee income 12.00 / Cr receivable 40000.00, Cr fee rec. 12.00.
    legs = sorted(returned.journal.entries.values_list("account__kind", "direction", "amount"))
    assert legs == [
        (AccountKind.ADVANCE_RECEIVABLE, "C", Decimal("40000.00")),
        (AccountKind.CHANNEL_CLEARING, "D", Decimal("40000.00")),
        (AccountKind.FEE_INCOME, "D", Decimal("12.00")),
        (AccountKind.FEE_RECEIVABLE, "C", Decimal("12.00")),
    ]
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("60000.00")
    assert balance(company, AccountKind.FEE_RECEIVABLE) == Decimal("18.00")
    assert account_balance(kind=AccountKind.CHANNEL_CLEARING, owner="TESTCH") == Decimal("-60000.00")
    assert Repayment.objects.count() == 0
    # Events: the payout's and the advance's new version, each as its GET renders it.
    payout_event = company.webhook_events.get(type="payout.returned")
    assert payout_event.payload["data"]["status"] == "returned"
    assert payout_event.payload["data"]["version"] == payout.version
    advance_event = company.webhook_events.get(type="advance.payout_returned")
    data = advance_event.payload["data"]
    assert (data["returned_amount"], data["disbursed_amount"], data["fee"], data["outstanding_amount"]) == (
        "40000.00", "60000.00", "18.00", "60018.00")
    assert data["version"] == advance.version
    assert [p["status"] for p in data["payouts"]] == ["succeeded", "returned"]
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []

    # Booking it again changes nothing; the due collection then takes 60018.00.
    before = ledger_fingerprint()
    assert payout_return_book(payout_id=payout.pk, source=ReturnSource.STAFF, actor_label="x").created is False
    assert ledger_fingerprint() == before
    set_business_date(DUE)
    credit_settlement(company, "100000.00")
    repayments_collect_run()
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert (advance.principal_repaid, advance.fee_repaid) == (Decimal("60000.00"), Decimal("18.00"))
    assert available(company) == Decimal("39982.00")
    assert line_figures(company) == ("0.00", "1000000.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_own_funds_part_goes_back_to_the_settlement_account(business_day):
    company, _ = company_with_line()
    credit_settlement(company, "30000.00")
    advance = paid_advance(company, "50000.00", "50000.00", use_own_funds=True)
    first = advance.payouts.get(sequence=1)
    assert (first.own_funds_amount, first.advanced_amount) == (Decimal("30000.00"), Decimal("20000.00"))
    assert advance.fee == Decimal("21.00")  # 70000 x 0.0003
    assert available(company) == Decimal("0.00")
    assert line_figures(company)[0] == "70000.00"

    returned = book(first)

    advance.refresh_from_db()
    assert (returned.own_funds, returned.principal_released) == (Decimal("30000.00"), Decimal("20000.00"))
    assert available(company) == Decimal("30000.00")
    assert line_figures(company) == ("50000.00", "950000.00")
    assert (advance.returned_amount, advance.disbursed_amount, advance.advanced_disbursed, advance.fee) == (
        Decimal("50000.00"), Decimal("50000.00"), Decimal("50000.00"), Decimal("15.00"))
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("50000.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_return_after_due_date_leaves_the_fee_as_charged(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    set_business_date(date(2026, 11, 27))  # after the due date, nothing repaid

    returned = book(second_payout(advance))

    advance.refresh_from_db()
    assert (returned.fee_before, returned.fee_after) == (Decimal("30.00"), Decimal("30.00"))
    assert advance.fee == Decimal("30.00")
    assert (advance.returned_amount, advance.advanced_disbursed) == (Decimal("40000.00"), Decimal("60000.00"))
    assert advance.outstanding_amount == Decimal("60030.00")
    assert line_figures(company) == ("60000.00", "940000.00")
    legs = sorted(returned.journal.entries.values_list("account__kind", "direction", "amount"))
    assert legs == [
        (AccountKind.ADVANCE_RECEIVABLE, "C", Decimal("40000.00")),
        (AccountKind.CHANNEL_CLEARING, "D", Decimal("40000.00")),
    ]
    assert balance(company, AccountKind.FEE_RECEIVABLE) == Decimal("30.00")
    assert returned.journal.business_date == date(2026, 11, 27)
    assert trial_balance() == {"CNY": Decimal("0.00")}


def _repaid_advance(company):
    advance = paid_advance(company, "60000.00", "40000.00")
    set_business_date(DUE)
    credit_settlement(company, "150000.00")
    repayments_collect_run()
    advance.refresh_from_db()
    assert advance.status == AdvanceStatus.REPAID
    assert available(company) == Decimal("49970.00")  # 150000 - 100030
    return advance


def test_return_after_repayment_on_the_due_date_refunds_principal_and_fee(business_day):
    company, _ = company_with_line()
    advance = _repaid_advance(company)

    returned = book(second_payout(advance))  # on the due date: the fee is recomputed

    advance.refresh_from_db()
    assert (returned.principal_released, returned.principal_refunded) == (Decimal("0.00"), Decimal("40000.00"))
    assert (returned.fee_after, returned.fee_refunded, returned.refund) == (
        Decimal("18.00"), Decimal("12.00"), Decimal("40012.00"))
    assert available(company) == Decimal("89982.00")  # 49970 + 40012
    assert advance.status == AdvanceStatus.REPAID
    assert (advance.principal_repaid, advance.fee_repaid, advance.fee) == (
        Decimal("60000.00"), Decimal("18.00"), Decimal("18.00"))
    assert (advance.repaid_amount, advance.outstanding_amount) == (Decimal("60018.00"), Decimal("0.00"))
    assert line_figures(company) == ("0.00", "1000000.00")
    legs = sorted(returned.journal.entries.values_list("account__kind", "direction", "amount"))
    assert legs == [
        (AccountKind.CHANNEL_CLEARING, "D", Decimal("40000.00")),
        (AccountKind.FEE_INCOME, "D", Decimal("12.00")),
        (AccountKind.SETTLEMENT, "C", Decimal("40012.00")),
    ]
    refund = Repayment.objects.get(source="refund")
    assert (refund.reference, refund.amount, refund.principal, refund.fee, refund.business_date) == (
        f"refund:{second_payout(advance).public_id}", Decimal("40012.00"), Decimal("40000.00"), Decimal("12.00"),
        DUE)
    allocation = RepaymentAllocation.objects.get(repayment=refund)
    assert (allocation.advance_id, allocation.principal, allocation.fee) == (
        advance.pk, Decimal("40000.00"), Decimal("12.00"))
    # GET /api/v1/repayments shows the refund next to the collection.
    response = signed_client_for(company).get("/api/v1/repayments")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["source"], r["amount"]) for r in results] == [("refund", "40012.00"), ("settlement_debit", "100030.00")]
    assert results[0]["allocations"] == [
        {"advance_id": advance.public_id, "penalty": "0.00", "fee": "12.00", "principal": "40000.00"}
    ]
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_return_after_repayment_past_the_due_date_refunds_principal_only(business_day):
    company, _ = company_with_line()
    advance = _repaid_advance(company)
    set_business_date(date(2026, 11, 27))

    returned = book(second_payout(advance))

    advance.refresh_from_db()
    assert (returned.refund, returned.fee_after) == (Decimal("40000.00"), Decimal("30.00"))
    assert available(company) == Decimal("89970.00")
    assert (advance.principal_repaid, advance.fee_repaid, advance.outstanding_amount) == (
        Decimal("60000.00"), Decimal("30.00"), Decimal("0.00"))
    assert Repayment.objects.get(source="refund").amount == Decimal("40000.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_statement_shows_the_return_and_the_refund(business_day):
    from funding.api.selectors_statements import statement_build

    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    book(second_payout(advance))

    statement = statement_build(company=company, business_date=date(2026, 11, 25))

    assert statement["advanced"] == "100000.00"
    assert statement["fees"] == "18.00"  # 30.00 charged, 12.00 given back
    assert (statement["returned"], statement["refunded"]) == ("40000.00", "0.00")
    assert statement["closing_outstanding"] == "60018.00"  # 100000 + 18 - 40000
    returns = [line for line in statement["lines"] if line["type"] == "return"]
    assert returns == [{
        "type": "return", "id": second_payout(advance).public_id, "external_id": second_payout(advance).external_id,
        "status": "returned", "advanced": "0.00", "fee": "-12.00", "penalty": "0.00", "repaid": "0.00",
        "outstanding": "0.00", "returned": "40000.00", "refunded": "0.00",
    }]


# Four eyes -------------------------------------------------------------------------------------------------


def test_staff_return_needs_a_second_person(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    payout = second_payout(advance)
    maker, checker = staff_user("ops_maker"), staff_user("checker")
    before = ledger_fingerprint()

    request = payout_return_propose(payout_public_id=payout.public_id, reason="ICBC return advice R123",
                                    maker=maker)
    with pytest.raises(FourEyesViolation) as refused:
        payout_return_approve(request_id=request.pk, checker=maker)
    assert refused.value.code == "four_eyes_violation"
    with pytest.raises(FourEyesViolation):
        payout_return_reject(request_id=request.pk, checker=maker, reason="mine")
    # Nothing moved on the refused paths.
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SUCCEEDED
    assert ledger_fingerprint() == before
    assert not PayoutReturn.objects.exists()
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("proposed", None)
    # The database refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        PayoutReturnRequest.objects.filter(pk=request.pk).update(decided_by=maker)

    booked = payout_return_approve(request_id=request.pk, checker=checker, reason="advice checked")

    assert (booked.source, booked.request_id, booked.amount) == (ReturnSource.STAFF, request.pk, Decimal("40000.00"))
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.proposed_by) == ("approved", checker, maker)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.RETURNED
    approved = AuditEvent.objects.get(action="payout.return.approved")
    assert (approved.actor, approved.after["maker"], approved.after["checker"]) == (checker, "ops_maker", "checker")
    assert AuditEvent.objects.get(action="payout.return.proposed").actor == maker
    assert line_figures(company) == ("60000.00", "940000.00")
    with pytest.raises(InvalidState):  # decided once
        payout_return_approve(request_id=request.pk, checker=checker)
    with pytest.raises(InvalidState):  # a returned payout cannot be proposed again
        payout_return_propose(payout_public_id=payout.public_id, reason="again", maker=maker)


def test_rejected_proposal_books_nothing(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "1000.00")
    payout = advance.payouts.get()
    maker, checker = staff_user(), staff_user()
    before = ledger_fingerprint()
    request = payout_return_propose(payout_public_id=payout.public_id, reason="advice", maker=maker)

    payout_return_reject(request_id=request.pk, checker=checker, reason="no such advice at the bank")

    request.refresh_from_db()
    assert request.status == "rejected"
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SUCCEEDED
    assert ledger_fingerprint() == before
    assert AuditEvent.objects.get(action="payout.return.rejected").actor == checker


def test_only_a_succeeded_payout_can_be_returned(business_day, channels):
    company, _ = company_with_line()
    advance = advance_request(company=company, external_id="PENDING-1", amount=Decimal("100.00"),
                              payouts=payout_inputs("100.00"))
    payout = advance.payouts.get()
    with pytest.raises(InvalidState):
        payout_return_propose(payout_public_id=payout.public_id, reason="advice", maker=staff_user())
    with pytest.raises(InvalidState):
        payout_return_book(payout_id=payout.pk, source=ReturnSource.STAFF, actor_label="x")
    assert not JournalTransaction.objects.filter(kind="payout.bank_return").exists()
    assert not PayoutAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).exists()


def test_api_shows_the_return_and_its_events(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    book(second_payout(advance))
    api = signed_client_for(company)

    body = api.get(f"/api/v1/advances/{advance.public_id}").json()
    assert (body["returned_amount"], body["disbursed_amount"], body["fee"], body["outstanding_amount"]) == (
        "40000.00", "60000.00", "18.00", "60018.00")
    assert [p["status"] for p in body["payouts"]] == ["succeeded", "returned"]
    events = api.get("/api/v1/events?type=payout.returned").json()["results"]
    assert [(e["type"], e["data"]["id"], e["data"]["status"]) for e in events] == [
        ("payout.returned", second_payout(advance).public_id, "returned")]
    events = api.get("/api/v1/events?type=advance.payout_returned").json()["results"]
    assert [(e["data"]["id"], e["data"]["returned_amount"], e["data"]["version"]) for e in events] == [
        (advance.public_id, "40000.00", body["version"])]
    csv_text = api.get("/api/v1/statements/2026-11-25?format=csv").content.decode()
    header = csv_text.splitlines()[0]
    assert header.endswith(",outstanding,amount,returned,refunded")
    assert f"return,{second_payout(advance).public_id}," in csv_text


def test_return_while_the_advance_is_still_disbursing(business_day):
    """One payout paid and returned while the other is still unknown: the finisher leaves the returned one out."""
    company, _ = company_with_line()
    advance = advance_request(company=company, external_id="DISB-1", amount=Decimal("100000.00"),
                              payouts=payout_inputs("60000.00", "40000.00"), use_own_funds=False)
    channel, _ = Channel.objects.get_or_create(code="TESTCH", defaults={"name": "Test", "adapter": "tests.fake"})
    day = business_date_current()
    with transaction.atomic():
        advance = Advance.objects.select_for_update().get(pk=advance.pk)
        advance.start_disbursing()
        advance.save(update_fields=["status"])
        first, second = advance.payouts.order_by("sequence")
        for payout in (first, second):
            payout.start_attempt()
            payout_post_funds_out(payout=payout, channel=channel, serial=f"{payout.public_id}-1", business_date=day)
            PayoutAttempt.objects.create(payout=payout, number=1, serial=f"{payout.public_id}-1", channel=channel,
                                         amount=payout.amount)
        attempt = PayoutAttempt.objects.get(payout=second)
        attempt.mark_succeeded()
        attempt.save()
        second.mark_succeeded()
        for payout in (first, second):
            payout.save()
        payout_post_confirmed(payout=second, channel=channel, serial=attempt.serial, fee=Decimal("0"),
                              business_date=day)

    returned = book(second)
    advance.refresh_from_db()
    assert (advance.status, advance.returned_amount, advance.fee) == ("disbursing", Decimal("40000.00"), Decimal("0"))
    assert returned.principal_released == Decimal("40000.00")
    # The first payout's outcome is unknown: its 60,000.00 stays reserved on the line (contract 1.7), the
    # returned 40,000.00 is released.
    assert line_figures(company) == ("0.00", "940000.00")

    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=first.pk)
        attempt = PayoutAttempt.objects.get(payout=payout)
        attempt.mark_succeeded()
        attempt.save()
        payout.mark_succeeded()
        payout.save()
        payout_post_confirmed(payout=payout, channel=channel, serial=attempt.serial, fee=Decimal("0"),
                              business_date=day)
    advance = advance_finish_disbursement(advance_id=advance.pk, business_date=day)
    assert advance.status == AdvanceStatus.PARTIALLY_DISBURSED
    assert (advance.disbursed_amount, advance.advanced_disbursed, advance.fee, advance.returned_amount) == (
        Decimal("60000.00"), Decimal("60000.00"), Decimal("18.00"), Decimal("40000.00"))
    assert balance(company, AccountKind.ADVANCE_RECEIVABLE) == Decimal("60000.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []


def test_a_pending_staff_proposal_is_closed_when_the_statement_books_the_return(business_day):
    company, _ = company_with_line()
    advance = paid_advance(company, "60000.00", "40000.00")
    payout = second_payout(advance)
    maker = staff_user("ops_maker")
    request = payout_return_propose(payout_public_id=payout.public_id, reason="ICBC return advice R9", maker=maker)

    book(payout)  # the channel's statement books it first

    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_reason) == (
        "rejected", None, "the return was booked by test (statement)")
    superseded = AuditEvent.objects.get(action="payout.return.superseded")
    assert superseded.after == {"request": request.pk, "source": "statement"}
    assert PayoutReturn.objects.get().request_id is None
