"""Contract 1.4: idempotent POSTs, replays, reused keys, concurrent requests; duplicate external ids."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from funding.api.models import IdempotencyRecord
from funding.models import Advance, CreditLine
from tests.factories import company_with_line
from tests.funding.api.conftest import advance_body, advances_requested, error_of, signed_client_for


@pytest.mark.django_db
def test_success_is_replayed_with_the_same_body(api, company_line):
    first = api.post("/api/v1/advances", advance_body(), idem="key-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = api.post("/api/v1/advances", advance_body(), idem="key-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # byte for byte, not only the same JSON
    assert Advance.objects.count() == 1
    line = CreditLine.objects.get(pk=company_line[1].pk)
    assert line.reserved == 150000


@pytest.mark.django_db
def test_a_replay_is_answered_by_the_claim_alone(api, company_line):
    """The claim rides in advance_reserve()'s statement (its gate) and stays closed for a key already used: the
    operation's part of the statement never runs, nothing is stored again, and the replay is no new request in
    the metrics."""
    first = api.post("/api/v1/advances", advance_body(), idem="key-r")
    assert first.status_code == 201
    counted = advances_requested()
    with CaptureQueriesContext(connection) as queries:
        again = api.post("/api/v1/advances", advance_body(), idem="key-r")
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.content) == (201, "true", first.content)
    gated = [q["sql"] for q in queries if "advance_reserve(" in q["sql"]]
    assert len(gated) == 1 and gated[0].startswith("WITH key AS ("), gated
    assert not any("api_idempotency_complete(" in q["sql"] for q in queries)
    assert advances_requested() == counted
    assert Advance.objects.count() == 1
    assert CreditLine.objects.get(pk=company_line[1].pk).reserved == 150000


@pytest.mark.django_db
def test_the_stored_body_is_the_very_bytes_sent_non_ascii_text_included(api, company_line):
    body = advance_body()
    body["payouts"][0]["beneficiary_name"] = "上海示例贸易有限公司 \"Ltd\" \\ /"
    first = api.post("/api/v1/advances", body, idem="key-zh")
    assert (first.status_code, first["Content-Type"]) == (201, "application/json")
    assert "上海示例贸易有限公司 \\\"Ltd\\\" \\\\ /".encode() in first.content  # UTF-8, as DRF renders it
    assert IdempotencyRecord.objects.get(key="key-zh").response_body.encode() == first.content
    again = api.post("/api/v1/advances", body, idem="key-zh")
    assert (again.status_code, again["Content-Type"], again.content) == (201, "application/json", first.content)


@pytest.mark.django_db
def test_body_is_compared_as_parsed_json(api):
    assert (
        api.post(
            "/api/v1/advances",
            raw=b'{"external_id":"E1","currency":"CNY","amount":"1.00","payouts":[{'
            b'"external_id":"P","beneficiary_name":"B","account_no":"12345678","bank_code":"ICBC",'
            b'"amount":"1.00"}]}',
            idem="k",
        ).status_code
        == 201
    )
    replay = api.post(
        "/api/v1/advances",
        raw=b'{ "payouts": [ {"amount": "1.00", "bank_code": "ICBC", '
        b'"account_no": "12345678", "beneficiary_name": "B", "external_id": "P"} ],\n'
        b'"amount": "1.00", "currency": "CNY", "external_id": "E1" }',
        idem="k",
    )
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_rejection_is_replayed_even_after_limit_was_freed(api, company_line):
    big = api.post("/api/v1/advances", advance_body(("900000.00",), external_id="BIG"), idem="big")
    assert big.status_code == 201
    refused = api.post("/api/v1/advances", advance_body(("200000.00",), external_id="SECOND"), idem="second")
    assert refused.status_code == 422
    assert error_of(refused) == {
        "code": "insufficient_limit",
        "message": "The credit line's available limit is less than the amount requested.",
        "details": {"available": "100000.00", "requested": "200000.00"},
    }
    assert api.post(f"/api/v1/advances/{big.json()['id']}/cancel", idem="cancel").status_code == 200
    assert CreditLine.objects.get(pk=company_line[1].pk).reserved == 0
    replay = api.post("/api/v1/advances", advance_body(("200000.00",), external_id="SECOND"), idem="second")
    assert replay.status_code == 422
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == refused.json()
    assert not Advance.objects.filter(external_id="SECOND").exists()
    # A new key is a new request: now it fits.
    assert (
        api.post(
            "/api/v1/advances", advance_body(("200000.00",), external_id="SECOND"), idem="second-2"
        ).status_code
        == 201
    )


@pytest.mark.django_db
def test_validation_errors_are_replayed_too(api):
    bad = advance_body(amount="1")
    first = api.post("/api/v1/advances", bad, idem="bad")
    assert first.status_code == 400
    again = api.post("/api/v1/advances", bad, idem="bad")
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (400, "true")


@pytest.mark.django_db
def test_same_key_with_another_body_or_path_is_refused(api):
    created = api.post("/api/v1/advances", advance_body(), idem="key-1")
    assert created.status_code == 201
    other_body = api.post("/api/v1/advances", advance_body(external_id="OTHER"), idem="key-1")
    assert other_body.status_code == 409
    assert error_of(other_body)["code"] == "idempotency_key_reused"
    other_path = api.post(f"/api/v1/advances/{created.json()['id']}/cancel", idem="key-1")
    assert other_path.status_code == 409
    assert error_of(other_path)["code"] == "idempotency_key_reused"
    assert Advance.objects.get().status == "reserved"


@pytest.mark.django_db
def test_keys_are_scoped_per_company(api, business_day):
    other = signed_client_for(company_with_line()[0])
    assert api.post("/api/v1/advances", advance_body(), idem="shared").status_code == 201
    response = other.post("/api/v1/advances", advance_body(), idem="shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert Advance.objects.count() == 2


@pytest.mark.django_db
def test_duplicate_external_id(api, company_line):
    assert api.post("/api/v1/advances", advance_body(), idem="a").status_code == 201
    duplicate = api.post("/api/v1/advances", advance_body(("1.00",)), idem="b")
    assert duplicate.status_code == 409
    assert error_of(duplicate)["code"] == "duplicate_external_id"
    assert Advance.objects.count() == 1
    assert CreditLine.objects.get(pk=company_line[1].pk).reserved == 150000


@pytest.mark.django_db
def test_cancel_then_cancel_again(api, company_line):
    advance_id = api.post("/api/v1/advances", advance_body()).json()["id"]
    cancelled = api.post(f"/api/v1/advances/{advance_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert CreditLine.objects.get(pk=company_line[1].pk).reserved == 0
    again = api.post(f"/api/v1/advances/{advance_id}/cancel")
    assert again.status_code == 409
    assert error_of(again)["code"] == "invalid_state"


def _waiting_on_a_lock(query_fragment: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{query_fragment}%"],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_request_in_progress_with_two_concurrent_requests(business_day):
    company, line = company_with_line()
    api = signed_client_for(company)
    lock_taken, release = threading.Event(), threading.Event()
    results = {}

    def hold_line_lock():
        # Another transaction holds the line's row: the first request blocks inside its own transaction.
        try:
            with transaction.atomic():
                CreditLine.objects.select_for_update().get(pk=line.pk)
                lock_taken.set()
                release.wait(30)
        finally:
            connection.close()

    def first_request():
        try:
            results["first"] = api.post("/api/v1/advances", advance_body(), idem="concurrent")
        finally:
            connection.close()

    locker = threading.Thread(target=hold_line_lock)
    locker.start()
    assert lock_taken.wait(10)
    first = threading.Thread(target=first_request)
    first.start()
    deadline = time.monotonic() + 10
    # The claim commits only with the advance, so look for the first request waiting on the line's row: its
    # statement, the claim with advance_reserve() after it (pg_stat_activity shows the first 1 kB of it).
    while not _waiting_on_a_lock("INSERT INTO api_idempotencyrecord"):
        assert time.monotonic() < deadline, "the first request never reached the line's row"
        time.sleep(0.02)
    assert not IdempotencyRecord.objects.filter(key="concurrent").exists()  # not visible before its COMMIT
    try:
        second = api.post("/api/v1/advances", advance_body(), idem="concurrent")
        assert second.status_code == 409
        assert error_of(second)["code"] == "request_in_progress"
        assert first.is_alive()
    finally:
        release.set()
        first.join(30)
        locker.join(30)
    assert results["first"].status_code == 201, results["first"].content
    replay = api.post("/api/v1/advances", advance_body(), idem="concurrent")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json()["id"] == results["first"].json()["id"]
    assert Advance.objects.filter(company=company).count() == 1
    assert CreditLine.objects.get(pk=line.pk).reserved == 150000


@pytest.mark.django_db(transaction=True)
def test_concurrent_distinct_keys_same_external_id_create_one_advance(business_day):
    company, line = company_with_line()
    api = signed_client_for(company)
    responses = []
    barrier = threading.Barrier(4)

    def post(n):
        try:
            barrier.wait(10)
            responses.append(api.post("/api/v1/advances", advance_body(), idem=f"k{n}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409], [r.content for r in responses]
    assert {error_of(r)["code"] for r in responses if r.status_code == 409} == {"duplicate_external_id"}
    assert Advance.objects.filter(company=company).count() == 1
    assert CreditLine.objects.get(pk=line.pk).reserved == 150000


@pytest.mark.django_db
def test_a_dead_claim_can_be_taken_over_after_its_lease(api, settings):
    from django.utils import timezone

    assert api.post("/api/v1/advances", advance_body(), idem="lease").status_code == 201
    record = IdempotencyRecord.objects.get(key="lease")
    # Simulate a request that died before storing its response (its transaction rolled back).
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status="in_progress", response_status=None, claimed_at=timezone.now()
    )
    in_progress = api.post("/api/v1/advances", advance_body(), idem="lease")
    assert error_of(in_progress)["code"] == "request_in_progress"
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        claimed_at=timezone.now() - timezone.timedelta(seconds=settings.API_IDEMPOTENCY_LEASE_SECONDS + 1)
    )
    retried = api.post("/api/v1/advances", advance_body(), idem="lease")
    # The advance exists (in this simulation it was committed), so the retry meets the unique external_id.
    assert error_of(retried)["code"] == "duplicate_external_id"


@pytest.mark.django_db
def test_prune_keeps_keys_for_seven_days_and_nonces_for_the_window(api):
    from django.utils import timezone

    from funding.api.models import NonceSeen
    from funding.api.services import api_prune

    assert api.post("/api/v1/advances", advance_body(), idem="old").status_code == 201
    assert api.post("/api/v1/advances", advance_body(external_id="E2"), idem="young").status_code == 201
    now = timezone.now()
    IdempotencyRecord.objects.filter(key="old").update(created_at=now - timezone.timedelta(days=9))
    IdempotencyRecord.objects.filter(key="young").update(
        created_at=now - timezone.timedelta(days=6, hours=23)
    )
    NonceSeen.objects.update(seen_at=now - timezone.timedelta(minutes=16))
    assert api_prune() == (2, 1)
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["young"]
