"""funding.api.keys: a process reads a key's row once, and every request's nonce statement checks it is current."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from funding.api import keys
from funding.api.crypto import secret_encrypt
from funding.api.models import ApiKey, IdempotencyRecord, NonceSeen
from funding.api.services import api_key_issue, api_key_revoke
from funding.models import Advance, Company
from funding.services.credit_lines import company_suspend
from tests.factories import company_with_line, staff_user
from tests.funding.api.conftest import SignedClient, advance_body, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(business_day):
    company, _ = company_with_line(limit="1000000.00")
    key = api_key_issue(company=company, actor_label="test")
    return company, key, SignedClient(key.key_id, key.secret)


def _key_reads(queries) -> int:
    return sum('FROM "api_apikey"' in q["sql"] and q["sql"].startswith("SELECT") for q in queries)


def _nothing_written_by_a_refused_post() -> tuple[int, int]:
    return Advance.objects.count(), IdempotencyRecord.objects.count()


def test_the_row_is_read_once_then_each_request_only_checks_it(issued):
    _, key, client = issued
    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/v1/credit-line").status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/api/v1/credit-line").status_code == 200
    assert (_key_reads(first), _key_reads(second)) == (1, 0)
    # The second request's nonce statement checked the row (and recorded the nonce).
    assert sum(q["sql"].startswith("WITH key AS (") for q in second) == 1
    assert NonceSeen.objects.filter(key__key_id=key.key_id).count() == 2


def test_with_the_cache_off_the_row_is_read_on_every_request(issued, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    _, _, client = issued
    client.get("/api/v1/credit-line")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/credit-line").status_code == 200
    assert _key_reads(queries) == 1


@pytest.mark.parametrize("method", ["get", "post", "post_bad_body"])
def test_a_revoked_key_is_refused_at_the_next_request_although_its_row_is_cached(issued, method):
    _, key, client = issued
    assert client.get("/api/v1/credit-line").status_code == 200  # the row is now this process's copy
    api_key_revoke(key=ApiKey.objects.get(key_id=key.key_id), actor_label="test", reason="leaked")
    nonces = NonceSeen.objects.count()
    if method == "get":
        response = client.get("/api/v1/credit-line")
    elif method == "post":
        response = client.post("/api/v1/advances", advance_body())
    else:  # refused before the claim: the nonce is recorded by finalize_response, which checks the key too
        response = client.post("/api/v1/advances", advance_body(amounts=("1.001",)))
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("HMAC-SHA256")
    assert NonceSeen.objects.count() == nonces
    assert _nothing_written_by_a_refused_post() == (0, 0)
    assert key.key_id not in keys._keys  # read again, found revoked, forgotten


def test_a_secret_re_encrypted_under_a_new_fernet_key_keeps_working_with_the_cached_row(issued):
    _, key, client = issued
    assert client.get("/api/v1/credit-line").status_code == 200
    old_ciphertext = ApiKey.objects.get(key_id=key.key_id).secret_encrypted
    ApiKey.objects.filter(key_id=key.key_id).update(secret_encrypted=secret_encrypt(key.secret))  # new IV: new text
    created = client.post("/api/v1/advances", advance_body())
    assert created.status_code == 201, created.content
    assert Advance.objects.count() == 1
    cached, _ = keys._keys[key.key_id]
    assert cached.secret_encrypted != old_ciphertext  # renewed by the claim's retry
    assert client.get("/api/v1/credit-line").status_code == 200


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_request_signed_with_a_replaced_secret_is_refused_although_the_old_row_is_cached(issued, method):
    _, key, client = issued
    assert client.get("/api/v1/credit-line").status_code == 200
    ApiKey.objects.filter(key_id=key.key_id).update(secret_encrypted=secret_encrypt("sk_a_new_secret_0123456789ab"))
    nonces = NonceSeen.objects.count()
    response = client.get("/api/v1/credit-line") if method == "get" else client.post("/api/v1/advances", advance_body())
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert NonceSeen.objects.count() == nonces
    assert _nothing_written_by_a_refused_post() == (0, 0)
    # Signed with the new secret, the next request is accepted (the cached row is read again).
    renewed = SignedClient(key.key_id, "sk_a_new_secret_0123456789ab")
    assert renewed.get("/api/v1/credit-line").status_code == 200


def test_a_suspension_shows_at_the_next_request_although_the_company_row_is_cached(issued):
    company, _, client = issued
    assert client.get("/api/v1/credit-line").json()["status"] == "active"
    company_suspend(company=Company.objects.get(pk=company.pk), actor=staff_user(), reason="review")
    assert client.get("/api/v1/credit-line").json()["status"] == "suspended"
    refused = client.post("/api/v1/advances", advance_body())
    assert (refused.status_code, error_of(refused)["code"]) == (422, "company_suspended")
    assert _nothing_written_by_a_refused_post() == (0, 1)  # the refusal is stored for its Idempotency-Key
