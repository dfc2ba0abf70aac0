"""Contract 1.6: webhook endpoint registration; signed delivery with retries to a loopback receiver."""

import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from funding.api.models import WebhookDeliveryAttempt
from funding.api.services import webhook_endpoint_set, webhook_event_redeliver
from funding.api.webhooks import webhook_claim, webhook_deliver, webhook_due_ids
from funding.models import WebhookEvent
from funding.services.credit_lines import credit_line_freeze
from tests.funding.api.conftest import error_of

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python"))
from advance_client import verify_webhook  # noqa: E402


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first `fail_times` deliveries with HTTP 500."""

    def __init__(self, fail_times: int = 0, status_on_fail: int = 500) -> None:
        self.fail_times = fail_times
        self.requests: list[tuple[dict, bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = status_on_fail if len(receiver.requests) < receiver.fail_times else 200
                receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def frozen_event(company_line):
    """A real state change writing a real outbox row: freezing the line emits credit_line.frozen."""
    from tests.factories import staff_user

    company, line = company_line
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="test")
    return WebhookEvent.objects.get(company=company, type="credit_line.frozen")


def _due_now(event: WebhookEvent) -> None:
    # Time passes: make the scheduled retry due now (the clock is the only thing we move).
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_put_and_get_webhook_endpoint(api):
    assert api.get("/api/v1/webhook-endpoint").json() == {"url": None}
    response = api.put("/api/v1/webhook-endpoint", {"url": "https://hooks.example.com/advance"})
    assert response.status_code == 200, response.content
    assert response.json()["url"] == "https://hooks.example.com/advance"
    assert response.json()["secret"].startswith("whsec_")
    assert api.get("/api/v1/webhook-endpoint").json() == {"url": "https://hooks.example.com/advance"}
    second = api.put("/api/v1/webhook-endpoint", {"url": "https://hooks.example.com/v2"})
    assert second.json()["secret"] != response.json()["secret"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/x",
        "https://[::1]/x",
        "https://192.168.0.10/x",
        "ftp://hooks.example.com/",
        "not a url",
        "https://user:pw@8.8.8.8/",
    ],
)
def test_webhook_url_must_be_public_https(api, settings, url):
    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    response = api.put("/api/v1/webhook-endpoint", {"url": url})
    assert response.status_code == 400, response.content
    assert "url" in error_of(response)["details"]


@pytest.mark.django_db
def test_public_ip_is_accepted_when_insecure_urls_are_off(api, settings):
    settings.WEBHOOK_ALLOW_INSECURE_URLS = False
    assert api.put("/api/v1/webhook-endpoint", {"url": "https://8.8.8.8/hooks"}).status_code == 200


@pytest.mark.django_db
def test_event_is_written_in_the_same_transaction_and_delivered_signed(frozen_event, company_line):
    company = company_line[0]
    with Receiver() as receiver:
        _, secret = webhook_endpoint_set(company=company, url=receiver.url, actor_label="test")
        assert frozen_event.id in webhook_due_ids()
        event = webhook_deliver(event_id=frozen_event.id)
    assert event.status == "delivered"
    assert len(receiver.requests) == 1
    headers, body, _ = receiver.requests[0]
    assert headers["X-Event-Id"] == frozen_event.public_id
    assert headers["X-Event-Type"] == "credit_line.frozen"
    payload = verify_webhook(secret, headers, body)
    assert payload["id"] == frozen_event.public_id
    assert payload["type"] == "credit_line.frozen"
    assert payload["data"]["status"] == "frozen"
    assert payload["data"]["version"] == frozen_event.resource_version
    with pytest.raises(ValueError):
        verify_webhook("whsec_wrong", headers, body)
    attempt = WebhookDeliveryAttempt.objects.get(event=frozen_event)
    assert (attempt.number, attempt.status_code, attempt.succeeded, attempt.error) == (1, 200, True, "")
    assert attempt.latency_ms is not None
    assert webhook_deliver(event_id=frozen_event.id) is None  # delivered: nothing more is sent


@pytest.mark.django_db
def test_receiver_failing_three_times_gets_it_acknowledged_exactly_once(frozen_event, company_line, settings):
    with Receiver(fail_times=3) as receiver:
        webhook_endpoint_set(company=company_line[0], url=receiver.url, actor_label="test")
        before = timezone.now()
        event = webhook_deliver(event_id=frozen_event.id)
        assert event.status == "pending"
        assert event.attempt_count == 1
        assert (
            before + timedelta(seconds=15) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=15)
        )
        assert webhook_deliver(event_id=frozen_event.id) is None  # not due yet
        for _ in range(10):
            _due_now(frozen_event)
            webhook_deliver(event_id=frozen_event.id)
    statuses = [status for _, _, status in receiver.requests]
    assert statuses == [500, 500, 500, 200]
    assert len({h["X-Event-Id"] for h, _, _ in receiver.requests}) == 1
    frozen_event.refresh_from_db()
    assert frozen_event.status == "delivered"
    attempts = list(WebhookDeliveryAttempt.objects.filter(event=frozen_event).order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert attempts[0].error == "HTTP 500"


@pytest.mark.django_db
def test_gives_up_after_the_schedule_then_staff_redeliver(frozen_event, company_line, settings):
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    assert sum(schedule) == 86640  # 24 h 4 min of retries (15s, 15s, 30s, 3m ... 6h, 6h): at least 24 hours
    with Receiver(fail_times=10_000) as receiver:
        webhook_endpoint_set(company=company_line[0], url=receiver.url, actor_label="test")
        for _ in range(len(schedule) + 1):
            _due_now(frozen_event)
            webhook_deliver(event_id=frozen_event.id)
        frozen_event.refresh_from_db()
        assert frozen_event.status == "failed"
        assert frozen_event.attempt_count == len(schedule) + 1
        assert len(receiver.requests) == len(schedule) + 1
        _due_now(frozen_event)
        assert webhook_deliver(event_id=frozen_event.id) is None

        receiver.fail_times = 0
        receiver.requests.clear()
        assert webhook_event_redeliver(event=frozen_event, actor=None, actor_label="staff") is True
        assert webhook_deliver(event_id=frozen_event.id).status == "delivered"
    assert [status for _, _, status in receiver.requests] == [200]
    assert WebhookDeliveryAttempt.objects.filter(event=frozen_event).count() == len(schedule) + 2


@pytest.mark.django_db
def test_no_endpoint_and_unreachable_endpoint_are_recorded_failures(frozen_event, company_line):
    event = webhook_deliver(event_id=frozen_event.id)
    assert event.status == "pending"
    assert WebhookDeliveryAttempt.objects.get(event=frozen_event).error == "no webhook URL registered"
    webhook_endpoint_set(company=company_line[0], url="http://127.0.0.1:9/closed", actor_label="test")
    _due_now(frozen_event)
    webhook_deliver(event_id=frozen_event.id)
    last = WebhookDeliveryAttempt.objects.filter(event=frozen_event).order_by("-number").first()
    assert last.number == 2 and last.status_code is None and "ConnectionError" in last.error


@pytest.mark.django_db(transaction=True)
def test_a_row_another_worker_holds_is_skipped_not_waited_for(business_day):
    from tests.factories import company_with_line, staff_user

    company, line = company_with_line()
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="test")
    event = WebhookEvent.objects.get(company=company, type="credit_line.frozen")
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                WebhookEvent.objects.select_for_update().get(pk=event.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert locked.wait(10)
        assert webhook_claim(event_id=event.pk) is None
    finally:
        release.set()
        worker.join(30)
    claimed = webhook_claim(event_id=event.pk)
    assert claimed is not None
    # The claim leases the row: a second worker does not take it while the first is sending.
    assert webhook_claim(event_id=event.pk) is None


@pytest.mark.django_db
def test_beat_job_enqueues_due_events(frozen_event, monkeypatch):
    from funding.api import tasks

    sent = []
    monkeypatch.setattr(tasks.webhook_deliver_event, "delay", lambda event_id: sent.append(event_id))
    pending = list(WebhookEvent.objects.filter(status="pending").values_list("pk", flat=True))
    assert frozen_event.id in pending  # with the line's approval event (credit_line.limit_changed)
    assert tasks.webhooks_enqueue_due() == len(pending)
    assert sorted(sent) == sorted(pending)
    # A delivered event is not enqueued again.
    WebhookEvent.objects.filter(pk=frozen_event.pk).update(status="delivered")
    sent.clear()
    tasks.webhooks_enqueue_due()
    assert frozen_event.id not in sent


@pytest.mark.django_db
def test_admin_redeliver_action(admin_client, frozen_event):
    WebhookEvent.objects.filter(pk=frozen_event.pk).update(status="failed")
    response = admin_client.post(
        "/admin/api/webhookoutboxevent/", {"action": "redeliver", "_selected_action": [frozen_event.pk]}
    )
    assert response.status_code == 302
    frozen_event.refresh_from_db()
    assert frozen_event.status == "pending"
    page = admin_client.get(f"/admin/api/webhookoutboxevent/{frozen_event.pk}/change/")
    assert page.status_code == 200
    assert admin_client.get("/admin/api/apikey/").status_code == 200


@pytest.mark.django_db
def test_new_event_is_enqueued_on_commit_and_a_broker_failure_is_harmless(
    company_line, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from funding.api import tasks
    from tests.factories import staff_user

    settings.WEBHOOK_ENQUEUE_ON_COMMIT = True
    sent = []
    monkeypatch.setattr(tasks.webhook_deliver_event, "delay", lambda event_id: sent.append(event_id))
    with django_capture_on_commit_callbacks(execute=True):
        credit_line_freeze(credit_line=company_line[1], actor=staff_user(), reason="test")
    event = WebhookEvent.objects.get(type="credit_line.frozen")
    assert sent == [event.pk]

    def broker_down(event_id):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.webhook_deliver_event, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        WebhookEvent.objects.filter(pk=event.pk).update(status="pending")
        from funding.services.events import event_emit

        event_emit(
            company=company_line[0],
            type="credit_line.unfrozen",
            resource_type="credit_line",
            resource_id="1",
            version=99,
            data={},
        )
    assert WebhookEvent.objects.filter(type="credit_line.unfrozen", status="pending").exists()
