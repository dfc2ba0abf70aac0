"""Contract 1.1: signed requests."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from funding.api.authentication import api_key_active
from funding.api.crypto import secret_encrypt
from funding.api.models import ApiKey, NonceSeen
from funding.api.services import api_key_issue, api_key_revoke
from funding.errors import InvalidState
from funding.models import Company
from tests.funding.api.conftest import SignedClient, error_of, signed_client_for

pytestmark = pytest.mark.django_db


def test_good_signature_gets_the_credit_line(api, company_line):
    company, line = company_line
    response = api.get("/api/v1/credit-line")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "company": company.code,
        "currency": "CNY",
        "status": "active",
        "approved_limit": "1000000.00",
        "effective_limit": "1000000.00",
        "limit_factors": [{"factor": "approved_limit", "value": "1000000.00"}],
        "reserved": "0.00",
        "outstanding": "0.00",
        "overdue": "0.00",
        "available": "1000000.00",
        "own_funds_available": "0.00",
        "business_date": "2026-11-25",
        "next_business_date": "2026-11-26",
        "daily_fee_rate": "0.000300",
        "daily_cap": None,
        "advanced_today": "0.00",
        "limit_thresholds": ["0.80", "0.95"],
    }


def test_signature_covers_the_query_string(api):
    assert api.get("/api/v1/advances?status=reserved").status_code == 200
    response = api.get("/api/v1/advances?status=reserved", sign_path="/api/v1/advances?status=disbursed")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


@pytest.mark.parametrize("header", ["X-Api-Key", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_missing_header_is_authentication_failed(api, header):
    response = api.get("/api/v1/credit-line", omit=(header,))
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert response.headers["WWW-Authenticate"].startswith("HMAC-SHA256")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sign_secret": "sk_wrong"},
        {"sign_body": b'{"amount": "1.00"}'},
        {"headers": {"X-Api-Key": "ak_000000000000000000000000"}},
        {"headers": {"X-Api-Key": "not a key"}},
        {"nonce": "short"},
        {"nonce": "x" * 65},
        {"nonce": "has space in it 123"},
        {"timestamp": "12.5"},
        {"headers": {"X-Signature": "ZZ"}},
    ],
)
def test_bad_credentials_are_authentication_failed(api, kwargs):
    response = api.post("/api/v1/advances", {"external_id": "X"}, **kwargs)
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


@pytest.mark.parametrize("offset", [-301, 301, -100000])
def test_stale_timestamp(api, offset):
    response = api.get("/api/v1/credit-line", timestamp=str(int(time.time()) + offset))
    assert response.status_code == 401
    assert error_of(response)["code"] == "stale_timestamp"


def test_timestamp_within_the_window_is_accepted(api):
    assert api.get("/api/v1/credit-line", timestamp=str(int(time.time()) - 290)).status_code == 200


def test_replayed_nonce(api):
    nonce = "nonce_0123456789abcdef"
    assert api.get("/api/v1/credit-line", nonce=nonce).status_code == 200
    response = api.get("/api/v1/credit-line", nonce=nonce)
    assert response.status_code == 401
    assert error_of(response)["code"] == "replayed_request"
    # The nonce is stored in PostgreSQL, i.e. shared by every server process.
    assert NonceSeen.objects.filter(nonce=nonce).count() == 1


def test_nonce_older_than_the_window_may_come_again(api):
    nonce = "nonce_old_0123456789"
    assert api.get("/api/v1/credit-line", nonce=nonce).status_code == 200
    NonceSeen.objects.filter(nonce=nonce).update(seen_at=timezone.now() - timezone.timedelta(minutes=16))
    assert api.get("/api/v1/credit-line", nonce=nonce).status_code == 200


def test_a_wrong_signature_does_not_burn_the_nonce(api):
    nonce = "nonce_unburnt_0123456"
    assert api.get("/api/v1/credit-line", nonce=nonce, sign_secret="sk_wrong").status_code == 401
    assert api.get("/api/v1/credit-line", nonce=nonce).status_code == 200


def test_same_nonce_on_another_key_is_fine(company_line):
    company = company_line[0]
    first, second = signed_client_for(company), signed_client_for(company)
    assert first.get("/api/v1/credit-line", nonce="shared_nonce_123456").status_code == 200
    assert second.get("/api/v1/credit-line", nonce="shared_nonce_123456").status_code == 200


def test_revoked_key_fails_at_once_and_the_other_key_keeps_working(company_line):
    company = company_line[0]
    old, new = signed_client_for(company), signed_client_for(company)
    assert old.get("/api/v1/credit-line").status_code == 200
    api_key_revoke(key=ApiKey.objects.get(key_id=old.key_id), actor_label="test", reason="rotation")
    response = old.get("/api/v1/credit-line")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert new.get("/api/v1/credit-line").status_code == 200


def test_key_lookup_loads_the_same_rows_as_the_orm(company_line):
    company = company_line[0]
    issued = api_key_issue(company=company, actor_label="test", label="ops")
    orm = ApiKey.objects.select_related("company").get(key_id=issued.key_id)
    with CaptureQueriesContext(connection) as queries:
        found = api_key_active(key_id=issued.key_id)
        assert found.company.code == company.code
    assert len(queries) == 1  # the company comes with the key
    key_fields = [f.attname for f in ApiKey._meta.concrete_fields]
    company_fields = [f.attname for f in Company._meta.concrete_fields]
    assert [getattr(found, f) for f in key_fields] == [getattr(orm, f) for f in key_fields]
    assert [getattr(found.company, f) for f in company_fields] == [getattr(orm.company, f) for f in company_fields]
    assert (found._state.adding, found._state.db, found.company._state.adding) == (False, "default", False)
    assert api_key_active(key_id="ak_doesnotexist0") is None
    api_key_revoke(key=orm, actor_label="test", reason="test")
    assert api_key_active(key_id=issued.key_id) is None


def test_a_new_secret_on_the_same_key_row_is_used_at_once(company_line):
    """The per-process secret cache is keyed by the ciphertext: a replaced secret is never served stale."""
    issued = api_key_issue(company=company_line[0], actor_label="test")
    client = SignedClient(issued.key_id, issued.secret)
    assert client.get("/api/v1/credit-line").status_code == 200
    new_secret = "sk_replaced_secret_for_the_test_0123456789"
    ApiKey.objects.filter(key_id=issued.key_id).update(secret_encrypted=secret_encrypt(new_secret))
    response = client.get("/api/v1/credit-line")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert SignedClient(issued.key_id, new_secret).get("/api/v1/credit-line").status_code == 200


def test_at_most_two_active_keys(company_line):
    company = company_line[0]
    first = api_key_issue(company=company, actor_label="test")
    api_key_issue(company=company, actor_label="test")
    with pytest.raises(InvalidState):
        api_key_issue(company=company, actor_label="test")
    assert ApiKey.objects.filter(company=company, revoked_at__isnull=True).count() == 2
    third = api_key_issue(company=company, actor_label="test", revoke_oldest_if_full=True)
    assert third.revoked_key_ids == [first.key_id]
    assert ApiKey.objects.filter(company=company, revoked_at__isnull=True).count() == 2


def test_secret_is_not_stored_in_plain_text(company_line):
    issued = api_key_issue(company=company_line[0], actor_label="test")
    stored = ApiKey.objects.get(key_id=issued.key_id)
    assert issued.secret not in stored.secret_encrypted
    assert issued.secret[3:20] not in stored.secret_encrypted


def test_tenant_isolation(api, company_line, business_day):
    from tests.factories import company_with_line
    from tests.funding.api.conftest import advance_body

    other_company, _ = company_with_line()
    other = signed_client_for(other_company)
    created = other.post("/api/v1/advances", advance_body())
    assert created.status_code == 201, created.content
    advance_id = created.json()["id"]
    for response in (
        api.get(f"/api/v1/advances/{advance_id}"),
        api.post(f"/api/v1/advances/{advance_id}/cancel"),
    ):
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    assert api.get("/api/v1/advances").json() == {"results": [], "next": None}
    assert api.get(f"/api/v1/advances?external_id={created.json()['external_id']}").json()["results"] == []
    assert other.get(f"/api/v1/advances/{advance_id}").json()["status"] == "reserved"


def test_schema_and_docs_need_no_signature_but_everything_else_does(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()  # Swagger UI assets are served by us (sidecar)
    for path in [
        "/api/v1/credit-line",
        "/api/v1/advances",
        "/api/v1/repayments",
        "/api/v1/webhook-endpoint",
        "/api/v1/statements/2026-11-25",
        "/api/v1/advances/adv_01JD0000000000000000000000",
    ]:
        response = client.get(path)
        assert response.status_code == 401, path
        assert error_of(response)["code"] == "authentication_failed"


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_signed_client_matches_the_python_client():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python"))
    from advance_client import sign_request

    from tests.funding.api.conftest import signature

    args = ("secret", "POST", "/api/v1/advances?x=1", "1700000000", "n" * 16, b'{"a":1}')
    assert sign_request(*args) == signature(*args)
    assert SignedClient  # imported for the helper's own sake


# A POST that claims an idempotency key records its nonce in the claim's statement (one round trip and one
# COMMIT less); the replay protection must be exactly the same.


def test_a_nonce_replayed_on_post_is_refused_and_creates_nothing(api):
    from funding.models import Advance
    from tests.funding.api.conftest import advance_body

    nonce = "nonce_post_0123456789"
    first = api.post("/api/v1/advances", advance_body(), nonce=nonce)
    assert first.status_code == 201, first.content
    # Another idempotency key and another external_id: only the nonce repeats.
    again = api.post("/api/v1/advances", advance_body(external_id="OTHER"), nonce=nonce)
    assert again.status_code == 401
    assert error_of(again)["code"] == "replayed_request"
    assert again.headers["WWW-Authenticate"]
    assert list(Advance.objects.values_list("external_id", flat=True)) == ["SETTLE-20261125-0001"]
    assert NonceSeen.objects.filter(nonce=nonce).count() == 1


def test_a_nonce_is_shared_between_get_and_post(api):
    from tests.funding.api.conftest import advance_body

    assert api.get("/api/v1/credit-line", nonce="nonce_shared_0123456").status_code == 200
    refused = api.post("/api/v1/advances", advance_body(), nonce="nonce_shared_0123456")
    assert error_of(refused)["code"] == "replayed_request"
    assert api.post("/api/v1/advances", advance_body(), nonce="nonce_fresh_01234567").status_code == 201
    assert api.get("/api/v1/credit-line", nonce="nonce_fresh_01234567").status_code == 401


def test_a_post_refused_before_its_claim_still_uses_up_its_nonce(api):
    from tests.funding.api.conftest import advance_body

    bad = api.post("/api/v1/advances", advance_body(amounts=("1.001",)), nonce="nonce_badbody_012345")
    assert error_of(bad)["code"] == "validation_error"
    no_key = api.post("/api/v1/advances", advance_body(), idem=None, nonce="nonce_nokey_01234567")
    assert error_of(no_key)["code"] == "validation_error"
    assert set(NonceSeen.objects.values_list("nonce", flat=True)) == {"nonce_badbody_012345", "nonce_nokey_01234567"}
    assert error_of(api.post("/api/v1/advances", advance_body(), nonce="nonce_nokey_01234567"))["code"] == (
        "replayed_request"
    )


def test_an_advance_post_records_its_nonce_with_the_claim(api):
    from tests.funding.api.conftest import advance_body

    assert api.post("/api/v1/advances", advance_body(external_id="FIRST")).status_code == 201  # reads the key
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/v1/advances", advance_body()).status_code == 201
    heads = [" ".join(q["sql"].split()[:4]) for q in queries]
    # (The test database's cache table and savepoints are other statements.)
    assert not any(h.startswith("INSERT INTO api_nonceseen") for h in heads), heads
    assert not any("api_apikey" in h for h in heads), heads  # the key's row: this process's copy
    claims = [q["sql"] for q in queries if q["sql"].lstrip().startswith("WITH key AS (")]
    assert len(claims) == 1, heads
    assert "INSERT INTO api_nonceseen" in claims[0] and "INSERT INTO api_idempotencyrecord" in claims[0]
    assert "advance_reserve(" in claims[0]  # the claim rides in the operation's own statement (its gate)
    assert sum("advance_reserve(" in q["sql"] for q in queries) == 1
    assert sum("api_idempotency_complete(" in q["sql"] for q in queries) == 1, heads


def test_a_replayed_nonce_with_the_same_idempotency_key_is_refused_not_replayed(api):
    """The stored response must not answer a replayed request: the nonce is checked before the claim."""
    from funding.api.models import IdempotencyRecord
    from funding.models import Advance
    from tests.funding.api.conftest import advance_body

    nonce = "nonce_same_key_0123456"
    first = api.post("/api/v1/advances", advance_body(), idem="same-key", nonce=nonce)
    assert first.status_code == 201, first.content
    again = api.post("/api/v1/advances", advance_body(), idem="same-key", nonce=nonce)
    assert again.status_code == 401
    assert error_of(again)["code"] == "replayed_request"
    assert "Idempotent-Replayed" not in again.headers
    # With a fresh nonce the same key replays the stored response as before.
    replay = api.post("/api/v1/advances", advance_body(), idem="same-key")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert Advance.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


@pytest.mark.parametrize(
    "broken",
    [
        {"idem": None},  # no Idempotency-Key: refused before the claim
        {"raw": b"{not json"},  # a body that does not parse: refused before the claim
    ],
)
def test_a_replayed_nonce_is_refused_before_any_other_refusal_of_a_post(api, broken):
    from tests.funding.api.conftest import advance_body

    nonce = "nonce_refused_early_01"
    assert api.get("/api/v1/credit-line", nonce=nonce).status_code == 200
    refused = api.post("/api/v1/advances", advance_body(), nonce=nonce, **broken)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "replayed_request"
    assert NonceSeen.objects.filter(nonce=nonce).count() == 1
