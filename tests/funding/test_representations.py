"""The advance's JSON has one shape: funding.representations.advance_representation. The set-based SQL of the
nightly jobs (funding.services.events.ADVANCE_DATA_SQL) renders the same JSON, and the API schema's
serializers (AdvanceOut, PayoutOut, PayoutAttemptOut) declare the same fields (issue 12 part 5)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from funding.api.serializers import AdvanceOut, PayoutAttemptOut, PayoutOut
from funding.models import Advance, AdvanceStatus, Payout, PayoutStatus
from funding.representations import advance_representation
from funding.services.advances import advance_cancel, advance_finish_disbursement, advance_request
from funding.services.events import ADVANCE_DATA_SQL
from tests.factories import company_with_line, payout_inputs
from tests.money_helpers import (
    advance_repay_in_full,
    advance_start_disbursing,
    payout_resolve,
    payout_send,
    settlement_deposit,
)

pytestmark = pytest.mark.django_db

D = Decimal
WED, THU = date(2026, 11, 25), date(2026, 11, 26)


def _sql_json(advance: Advance) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {ADVANCE_DATA_SQL} FROM funding_advance v WHERE v.id = %s", [advance.pk])
        return cursor.fetchone()[0]


def _request(company, n: int, *amounts: str) -> Advance:
    return advance_request(company=company, external_id=f"REP-{n}", amount=sum((D(a) for a in amounts), D(0)),
                           payouts=payout_inputs(*amounts))


def _disbursed(company, n: int, *outcomes: str) -> Advance:
    advance = _request(company, n, *["100000.00"] * len(outcomes))
    advance_start_disbursing(advance=advance)
    for payout, outcome in zip(advance.payouts.order_by("sequence"), outcomes, strict=True):
        payout_send(payout=payout, business_date=WED)
        if outcome == "failed":
            payout_resolve(payout=payout, outcome="retry", business_date=WED)  # a failed attempt first
            payout_send(payout=payout, business_date=WED)
        payout_resolve(payout=payout, outcome=outcome, business_date=WED)
    return advance_finish_disbursement(advance_id=advance.pk, business_date=WED)


@pytest.fixture
def advances(business_day) -> dict[str, Advance]:
    company, _ = company_with_line(limit="5000000.00")
    result = {"reserved": _request(company, 1, "100000.00", "50000.00")}
    cancelled = _request(company, 2, "1000.00")
    result["cancelled"] = advance_cancel(company=company, public_id=cancelled.public_id, actor_label="test")
    disbursing = _request(company, 3, "100000.00", "20000.00")
    advance_start_disbursing(advance=disbursing)
    payout_send(payout=disbursing.payouts.order_by("sequence").first(), business_date=WED)
    result["disbursing"] = disbursing
    result["disbursed"] = _disbursed(company, 4, "succeeded", "succeeded")
    partial = _disbursed(company, 5, "succeeded", "failed")
    Payout.objects.filter(advance=partial, status=PayoutStatus.FAILED).update(failure_code="account_closed")
    result["partially_disbursed"] = partial
    result["failed"] = _disbursed(company, 6, "failed")
    overdue = _disbursed(company, 7, "succeeded")
    # The nightly jobs' effect, set directly: overdue with penalty, part of the principal and fee repaid.
    Advance.objects.filter(pk=overdue.pk).update(
        status=AdvanceStatus.OVERDUE, overdue_since=THU, aging_bucket="1-3", penalty_accrued=D("15.05"),
        penalty_repaid=D("5.05"), principal_repaid=D("40000.00"), fee_repaid=D("10.00"), version=7,
    )
    result["overdue"] = overdue
    repaid = _disbursed(company, 8, "succeeded")
    settlement_deposit(company=company, amount=D("200000.00"), business_date=THU)
    result["repaid"] = advance_repay_in_full(advance=repaid, business_date=THU)
    return {state: Advance.objects.get(pk=a.pk) for state, a in result.items()}


def test_the_set_based_sql_renders_the_python_representation_in_every_state(advances):
    assert {state: a.status for state, a in advances.items()} == {s: s for s in AdvanceStatus.values}
    for state, advance in advances.items():
        python = advance_representation(advance)
        sql = _sql_json(advance)
        assert (state, sql) == (state, python)
        assert list(sql) == list(python)
        assert [list(p) for p in sql["payouts"]] == [list(p) for p in python["payouts"]]


def test_the_states_render_what_they_hold(advances):
    """The fixture is no empty shell: attempts, failure codes, value dates, penalty and repayments show."""
    partial = advance_representation(advances["partially_disbursed"])
    assert [p["status"] for p in partial["payouts"]] == ["succeeded", "failed"]
    assert partial["payouts"][1]["failure_code"] == "account_closed"
    assert [len(p["attempts"]) for p in partial["payouts"]] == [1, 2]
    assert partial["payouts"][0]["value_date"] == "2026-11-25"
    overdue = advance_representation(advances["overdue"])
    fee = D(overdue["fee"])
    assert (overdue["penalty"], overdue["repaid_amount"]) == ("15.05", "40015.05")  # 40000 + 10 + 5.05
    # principal 100000 - 40000, fee less 10.00 repaid, penalty 15.05 - 5.05
    assert D(overdue["outstanding_amount"]) == D("60000.00") + (fee - D("10.00")) + D("10.00")
    assert advance_representation(advances["repaid"])["outstanding_amount"] == "0.00"
    assert advance_representation(advances["disbursing"])["payouts"][0]["attempts"][0]["status"] == "processing"


def test_the_api_schema_declares_the_representations_fields(advances):
    body = advance_representation(advances["partially_disbursed"])
    assert list(AdvanceOut().fields) == list(body)
    assert list(PayoutOut().fields) == list(body["payouts"][0])
    assert list(PayoutAttemptOut().fields) == list(body["payouts"][0]["attempts"][0])
    for advance in advances.values():
        serializer = AdvanceOut(data=advance_representation(advance))
        assert serializer.is_valid(), serializer.errors


def test_the_schemas_states_are_the_models():
    assert list(AdvanceOut().fields["status"].choices) == AdvanceStatus.values
    assert list(PayoutOut().fields["status"].choices) == PayoutStatus.values
