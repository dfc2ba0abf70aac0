"""Contract 1.7: GET /api/v1/events (catching up) and POST /api/v1/webhook-endpoint/test (a signed ping)."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection, transaction

from funding.api.models import IdempotencyRecord
from funding.api.webhooks import event_body
from funding.models import WebhookEvent
from funding.services.events import event_emit
from tests.factories import company_with_line
from tests.funding.api.conftest import error_of, signed_client_for


def _emit(company, n: int, type: str = "advance.disbursed") -> WebhookEvent:
    return event_emit(company=company, type=type, resource_type="advance", resource_id=f"adv_{n}", version=n,
                      data={"id": f"adv_{n}", "n": n})


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def two_companies(business_day):
    mine, _ = company_with_line(code="MINE")
    theirs, _ = company_with_line(code="THEIRS")
    WebhookEvent.objects.all().delete()  # the lines' own approval events are not what these tests are about
    return mine, theirs


@pytest.mark.django_db
def test_events_in_the_order_written_each_exactly_its_webhook_body(two_companies):
    mine, theirs = two_companies
    written = [_emit(mine, 1), _emit(theirs, 2), _emit(mine, 3, "credit_line.frozen"), _emit(mine, 4)]
    api = signed_client_for(mine)
    response = api.get("/api/v1/events")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    assert [e["id"] for e in body["results"]] == [written[0].public_id, written[2].public_id, written[3].public_id]
    # Byte for byte the webhook's body, once parsed.
    assert body["results"] == [json.loads(event_body(e)) for e in (written[0], written[2], written[3])]
    assert body["results"][0] == {
        "id": written[0].public_id, "type": "advance.disbursed", "created_at": written[0].payload["created_at"],
        "data": {"id": "adv_1", "n": 1, "version": 1},
    }


@pytest.mark.django_db
def test_pages_follow_next_and_after_and_type(two_companies):
    mine, _ = two_companies
    written = [_emit(mine, n, "payout.failed" if n % 2 else "payout.succeeded") for n in range(1, 8)]
    api = signed_client_for(mine)
    seen, url = [], "/api/v1/events?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [e["id"] for e in page["results"]]
        assert len(page["results"]) <= 3
        url = _path_of(page["next"]) if page["next"] else None
        if url:
            assert parse_qs(urlsplit(url).query)["page_size"] == ["3"]
    assert seen == [e.public_id for e in written]

    after = api.get(f"/api/v1/events?after={written[2].public_id}").json()
    assert [e["id"] for e in after["results"]] == [e.public_id for e in written[3:]]
    failed = api.get(f"/api/v1/events?type=payout.failed&after={written[1].public_id}").json()
    assert [e["id"] for e in failed["results"]] == [written[2].public_id, written[4].public_id, written[6].public_id]
    assert api.get(f"/api/v1/events?after={written[-1].public_id}").json() == {"results": [], "next": None}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("after=evt_01ABCDEFGHJKMNPQRSTVWXYZ00", "after"),  # well-formed, not an event of ours
        ("after=adv_01ABCDEFGHJKMNPQRSTVWXYZ00", "after"),
        ("after=evt_x%00", "after"),
        ("type=Advance.Disbursed", "type"),
        ("type=advance.", "type"),
        ("type=advance.disbursed%E2%80%AE", "type"),
        ("type=" + "a." * 30, "type"),
        ("page_size=0", "page_size"),
        ("page_size=201", "page_size"),
    ],
)
def test_bad_queries_are_validation_errors(two_companies, query, path):
    mine, theirs = two_companies
    foreign = _emit(theirs, 1)
    api = signed_client_for(mine)
    response = api.get(f"/api/v1/events?{query}")
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] == "validation_error"
    assert list(error_of(response)["details"]) == [path]
    other = api.get(f"/api/v1/events?after={foreign.public_id}")
    assert list(error_of(other)["details"]) == ["after"]  # another company's event is no position of ours


def _emit_in_open_transaction(company, started: threading.Event, release: threading.Event, out: list):
    try:
        with transaction.atomic():
            out.append(_emit(company, 1))
            started.set()
            release.wait(20)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_never_skipped(business_day):
    """E1 is written first but commits last: E2 must not be listed before E1 can be, or after=E2 would skip E1."""
    mine, _ = company_with_line(code="MINE")
    WebhookEvent.objects.all().delete()
    api = signed_client_for(mine)
    started, release, out = threading.Event(), threading.Event(), []
    writer = threading.Thread(target=_emit_in_open_transaction, args=(mine, started, release, out))
    writer.start()
    try:
        assert started.wait(20)
        second = _emit(mine, 2)  # committed at once, with a higher id and a later transaction
        assert api.get("/api/v1/events").json() == {"results": [], "next": None}
    finally:
        release.set()
        writer.join(20)
    first = out[0]
    assert first.pk < second.pk
    # Listed once every transaction that was running when they were written has ended: on a database server
    # shared with other work (other test runs) that may take a moment.
    deadline = time.monotonic() + 60
    listed = []
    while time.monotonic() < deadline:
        listed = api.get("/api/v1/events").json()["results"]
        if listed:
            break
        time.sleep(0.2)
    assert [e["id"] for e in listed] == [first.public_id, second.public_id]


@pytest.mark.django_db
def test_the_listing_uses_the_company_position_index(two_companies):
    mine, _ = two_companies
    for n in range(3):
        _emit(mine, n)
    from funding.api.selectors import event_list

    qs_sql = str(WebhookEvent.objects.filter(company=mine).order_by("written_xact", "id").query)
    assert "written_xact" in qs_sql
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM funding_webhookevent WHERE company_id = %s AND (written_xact, id) > (0, 0) "
            "ORDER BY written_xact, id LIMIT 51", [mine.pk]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "webhookevent_company_xact" in plan, plan
    assert len(event_list(company=mine, after=None, type=None, limit=10)) == 3


# POST /api/v1/webhook-endpoint/test ------------------------------------------------------------------------


class Receiver:
    def __init__(self, status: int = 204):
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db
def test_the_test_sends_a_signed_ping_and_reports_status_and_time(api, company_line):
    with Receiver(status=204) as receiver:
        secret = api.put("/api/v1/webhook-endpoint", {"url": receiver.url}).json()["secret"]
        response = api.post("/api/v1/webhook-endpoint/test", idem="ping-1")
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"url", "event_id", "status_code", "duration_ms"}
        assert (body["url"], body["status_code"]) == (receiver.url, 204)
        assert isinstance(body["duration_ms"], int) and 0 <= body["duration_ms"] < 10_000
        [(headers, raw)] = receiver.requests
        expected = hmac.new(secret.encode(), headers["X-Timestamp"].encode() + b"." + raw, hashlib.sha256)
        assert headers["X-Signature"] == expected.hexdigest()
        assert (headers["X-Event-Type"], headers["X-Event-Id"]) == ("ping", body["event_id"])
        ping = json.loads(raw)
        assert (ping["id"], ping["type"], ping["data"]) == (body["event_id"], "ping", {"company": company_line[0].code})
        # Idempotent like every POST: the same key answers the stored result and sends nothing.
        replay = api.post("/api/v1/webhook-endpoint/test", idem="ping-1")
        assert (replay.status_code, replay.headers["Idempotent-Replayed"], replay.json()) == (200, "true", body)
        assert len(receiver.requests) == 1
    assert api.get("/api/v1/events?type=ping").json() == {"results": [], "next": None}


@pytest.mark.django_db
def test_the_receiver_s_own_error_is_reported_not_raised(api):
    with Receiver(status=500) as receiver:
        api.put("/api/v1/webhook-endpoint", {"url": receiver.url})
        response = api.post("/api/v1/webhook-endpoint/test")
    assert response.status_code == 200
    assert response.json()["status_code"] == 500


@pytest.mark.django_db
def test_no_registered_url_is_a_clear_refusal(api):
    response = api.post("/api/v1/webhook-endpoint/test", idem="no-url")
    assert response.status_code == 422
    assert error_of(response)["code"] == "webhook_url_not_registered"
    again = api.post("/api/v1/webhook-endpoint/test", idem="no-url")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == response.json()
    body = api.post("/api/v1/webhook-endpoint/test", {"x": 1})
    assert body.status_code == 400 and list(error_of(body)["details"]) == ["body"]


@pytest.mark.django_db
def test_an_unreachable_receiver_is_502_and_a_retry_tries_again(api):
    api.put("/api/v1/webhook-endpoint", {"url": "http://127.0.0.1:9/closed"})
    response = api.post("/api/v1/webhook-endpoint/test", idem="unreachable")
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "webhook_receiver_unreachable"
    assert "NewConnectionError" in error["details"]["error"] and isinstance(error["details"]["duration_ms"], int)
    assert not IdempotencyRecord.objects.filter(key="unreachable").exists()
    with Receiver() as receiver:
        # The same key after the URL was fixed: it runs again (a 5xx is never stored).
        api.put("/api/v1/webhook-endpoint", {"url": receiver.url})
        retried = api.post("/api/v1/webhook-endpoint/test", idem="unreachable")
    assert retried.status_code == 200 and retried.json()["status_code"] == 204


@pytest.mark.django_db
def test_a_url_that_now_resolves_inside_is_refused_like_a_delivery(api, company_line, monkeypatch, settings):
    from tests.funding.api.test_outbound import FakeDns

    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    FakeDns(monkeypatch, {"hooks.test": [["8.8.8.8"], ["10.0.0.7"]]})
    assert api.put("/api/v1/webhook-endpoint", {"url": "https://hooks.test/x"}).status_code == 200
    response = api.post("/api/v1/webhook-endpoint/test")
    assert response.status_code == 422
    assert error_of(response)["code"] == "webhook_url_refused"
    assert "10.0.0.7 is not a public address" in error_of(response)["details"]["url"][0]


@pytest.mark.django_db
def test_a_replayed_nonce_on_the_test_is_refused(api):
    nonce = "nonce_ping_0123456789"
    api.post("/api/v1/webhook-endpoint/test", nonce=nonce)
    again = api.post("/api/v1/webhook-endpoint/test", nonce=nonce)
    assert again.status_code == 401 and error_of(again)["code"] == "replayed_request"
