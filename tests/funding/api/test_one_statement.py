"""POST /api/v1/advances outside any transaction (every real request's case): the claim, the advance and the stored
answer are one statement that commits by itself; any other outcome takes the transactional way, as if the attempt
had never been (funding.api.idempotency.StoredAnswer, config.db.Finish)."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from funding.api.models import IdempotencyRecord, NonceSeen
from funding.models import Advance, CreditLine, WebhookEvent
from funding.representations import advance_representation
from tests.factories import company_with_line
from tests.funding.api.conftest import advance_body, advances_requested, error_of, signed_client_for
from tests.money_helpers import settlement_deposit

pytestmark = pytest.mark.django_db(transaction=True)

# A client's text that spells what the statement's template is made of: format()'s own syntax, and a slot's
# shape without the process's mark.
NONCE_ONE, NONCE_NO = "a1" * 16, "b2" * 16
AWKWARD_NAME = '上海示例 100% "%1$s" %%s %s slotn1 "slot0n2"'


def _reserving(queries) -> list[str]:
    """The statements that ran advance_reserve(), in order."""
    return [q["sql"] for q in queries if "advance_reserve(" in q["sql"]]


def test_a_plain_advance_is_one_statement_whose_stored_answer_is_the_very_bytes_sent(business_day):
    company, line = company_with_line(limit="1000000.00")
    # Own funds pay the first payout and part of the second; the line the rest.
    settlement_deposit(company=company, amount="120000.00", business_date=date(2026, 11, 25))
    api = signed_client_for(company)
    body = advance_body(amounts=("100000.00", "50000.00"))
    body["payouts"][0]["beneficiary_name"] = AWKWARD_NAME
    accepted = advances_requested("accepted", "none")

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/advances", body, idem="one", nonce=NONCE_ONE)

    assert (response.status_code, response["Content-Type"]) == (201, "application/json")
    assert "Idempotent-Replayed" not in response.headers
    reserving = _reserving(queries)
    assert len(reserving) == 1 and "api_idempotency_respond(" in reserving[0], reserving
    assert not any("api_idempotency_complete(" in q["sql"] for q in queries)
    data = response.json()
    assert (data["status"], data["amount"], data["own_funds_amount"], data["advanced_amount"]) == (
        "reserved", "150000.00", "120000.00", "30000.00")
    assert (data["business_date"], data["due_date"], data["outstanding_amount"]) == ("2026-11-25", "2026-11-26", "0.00")
    payouts = [(p["amount"], p["own_funds_amount"], p["advanced_amount"], p["beneficiary_name"])
               for p in data["payouts"]]
    assert payouts == [
        ("100000.00", "100000.00", "0.00", AWKWARD_NAME),
        ("50000.00", "20000.00", "30000.00", "Shanghai Example Trading Co."),
    ]
    # Exactly the bytes DRF renders for the advance read back now (nothing happened to it since), and stored.
    advance = Advance.objects.get(public_id=data["id"])
    assert response.content == JSONRenderer().render(advance_representation(advance))
    record = IdempotencyRecord.objects.get(company=company, key="one")
    assert (record.status, record.response_status, record.response_body.encode()) == ("done", 201, response.content)
    assert NonceSeen.objects.filter(nonce=NONCE_ONE).count() == 1
    assert CreditLine.objects.get(pk=line.pk).reserved == 30000
    assert advances_requested("accepted", "none") == accepted + 1

    again = api.post("/api/v1/advances", body, idem="one")  # a replay's attempt declines: it is answered as before
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.content) == (201, "true", response.content)
    reused = api.post("/api/v1/advances", advance_body(amounts=("1.00",)), idem="one")
    assert (reused.status_code, error_of(reused)["code"]) == (409, "idempotency_key_reused")
    same_nonce = api.post("/api/v1/advances", body, idem="other", nonce=NONCE_ONE)
    assert (same_nonce.status_code, error_of(same_nonce)["code"]) == (401, "replayed_request")
    assert Advance.objects.filter(company=company).count() == 1
    assert advances_requested("accepted", "none") == accepted + 1


def test_a_refusal_takes_the_transactional_way_stored_and_counted_once(business_day):
    company, line = company_with_line(limit="1000.00")
    api = signed_client_for(company)
    refused, errors = advances_requested("rejected", "insufficient_limit"), advances_requested("rejected", "error")

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/advances", advance_body(amounts=("2000.00",)), idem="no", nonce=NONCE_NO)

    assert (response.status_code, error_of(response)["code"]) == (422, "insufficient_limit")
    assert error_of(response)["details"] == {"available": "1000.00", "requested": "2000.00"}
    # The attempt declined (and left nothing), then the transactional way: its own statement, the answer stored.
    reserving = _reserving(queries)
    assert len(reserving) == 2, reserving
    assert "api_idempotency_respond(" in reserving[0] and "api_idempotency_respond(" not in reserving[1]
    assert sum("api_idempotency_complete(" in q["sql"] for q in queries) == 1
    record = IdempotencyRecord.objects.get(company=company, key="no")
    assert (record.status, record.response_status, record.response_body.encode()) == ("done", 422, response.content)
    assert NonceSeen.objects.filter(nonce=NONCE_NO).count() == 1
    assert not Advance.objects.filter(company=company).exists()
    assert CreditLine.objects.get(pk=line.pk).reserved == 0
    assert advances_requested("rejected", "insufficient_limit") == refused + 1
    assert advances_requested("rejected", "error") == errors

    again = api.post("/api/v1/advances", advance_body(amounts=("2000.00",)), idem="no")
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.content) == (422, "true", response.content)
    assert advances_requested("rejected", "insufficient_limit") == refused + 1


def test_an_advance_that_reaches_a_threshold_takes_the_transactional_way_and_announces_it_once(business_day):
    company, line = company_with_line(limit="1000.00")
    api = signed_client_for(company)
    accepted = advances_requested("accepted", "none")

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/advances", advance_body(amounts=("900.00",)), idem="th")

    assert response.status_code == 201
    assert len(_reserving(queries)) == 2
    events = WebhookEvent.objects.filter(company=company, type="credit_line.threshold_reached")
    assert [e.payload["data"]["threshold"] for e in events] == ["0.80"]
    assert Advance.objects.filter(company=company).count() == 1
    assert CreditLine.objects.get(pk=line.pk).reserved == 900
    record = IdempotencyRecord.objects.get(company=company, key="th")
    assert (record.response_status, record.response_body.encode()) == (201, response.content)
    assert advances_requested("accepted", "none") == accepted + 1


def test_input_refused_before_the_statement_never_sends_the_attempt(business_day):
    company, _ = company_with_line()
    api = signed_client_for(company)
    body = advance_body(amounts=("10.00",))
    body["payouts"][0]["bank_code"] = "B" * 17

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/advances", body, idem="bad")

    assert (response.status_code, error_of(response)["code"]) == (400, "validation_error")
    assert not any("api_idempotency_respond(" in q["sql"] for q in queries)
    record = IdempotencyRecord.objects.get(company=company, key="bad")
    assert (record.response_status, record.response_body.encode()) == (400, response.content)
    assert not Advance.objects.filter(company=company).exists()
