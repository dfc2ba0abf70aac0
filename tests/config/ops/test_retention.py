import json
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from config.ops.retention import retention_purge
from funding.models import WebhookEvent, WebhookEventStatus
from funding.services.events import event_emit
from ledger.models import Entry, JournalTransaction
from tests.factories import company_with_line


def _event(company, *, delivered_days_ago: int | None):
    event = event_emit(company=company, type="advance.disbursed", resource_type="advance",
                       resource_id="adv_x", version=1, data={"id": "adv_x"})
    if delivered_days_ago is not None:
        event.mark_delivered()
        event.delivered_at = timezone.now() - timedelta(days=delivered_days_ago)
        event.save(update_fields=["status", "delivered_at"])
    return event


@pytest.mark.django_db
def test_retention_archives_then_deletes_only_delivered_events_past_retention(tmp_path):
    company, _ = company_with_line()
    WebhookEvent.objects.all().delete()  # events of the line's approval are not what this test is about
    old = _event(company, delivered_days_ago=120)
    recent = _event(company, delivered_days_ago=10)
    pending = _event(company, delivered_days_ago=None)
    WebhookEvent.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=400))
    journals, entries = JournalTransaction.objects.count(), Entry.objects.count()

    from funding.api.models import WebhookDeliveryAttempt

    for event in (old, recent):
        WebhookDeliveryAttempt.objects.create(event=event, number=1, attempted_at=event.delivered_at,
                                              status_code=200, succeeded=True)
    with override_settings(RETENTION_ARCHIVE_DIR=str(tmp_path)):
        assert retention_purge() == {
            "api.WebhookDeliveryAttempt": 1, "funding.WebhookEvent": 1, "console.LoginThrottle": 0
        }
        # a second run changes nothing
        assert retention_purge() == {
            "api.WebhookDeliveryAttempt": 0, "funding.WebhookEvent": 0, "console.LoginThrottle": 0
        }
    assert list(WebhookDeliveryAttempt.objects.values_list("event_id", flat=True)) == [recent.pk]

    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert WebhookEvent.objects.get(pk=pending.pk).status == WebhookEventStatus.PENDING
    archived = [json.loads(line) for f in tmp_path.iterdir() for line in f.read_text().splitlines()]
    archived = [row for row in archived if row["model"] == "funding.webhookevent"]
    assert [row["pk"] for row in archived] == [old.pk]
    assert archived[0]["fields"]["public_id"] == old.public_id
    assert (JournalTransaction.objects.count(), Entry.objects.count()) == (journals, entries)


@pytest.mark.django_db
@pytest.mark.parametrize("label", ["ledger.Entry", "ledger.JournalTransaction", "funding.AuditEvent"])
def test_retention_refuses_rules_that_touch_the_books(label):
    rule = {"model": label, "field": "id", "filter": {}, "days": 1}
    with override_settings(RETENTION_RULES=[rule]), pytest.raises(ImproperlyConfigured):
        retention_purge()


@pytest.mark.django_db
def test_webhook_events_are_kept_at_least_30_days_whatever_the_rules_say():
    rule = {"model": "funding.WebhookEvent", "field": "delivered_at", "filter": {"status": "delivered"}, "days": 29}
    with override_settings(RETENTION_RULES=[rule]), pytest.raises(ImproperlyConfigured, match="at least 30 days"):
        retention_purge()
    company, _ = company_with_line()
    WebhookEvent.objects.all().delete()
    kept = _event(company, delivered_days_ago=29)
    with override_settings(RETENTION_RULES=[{**rule, "days": 30}]):
        assert retention_purge() == {"funding.WebhookEvent": 0}
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_webhook_retention_setting_cannot_go_under_30_days():
    from tests.config.ops.test_settings import load_settings

    result = load_settings(RETENTION_WEBHOOK_DAYS="7")
    assert result.returncode != 0 and "RETENTION_WEBHOOK_DAYS must be at least 30" in result.stderr


@pytest.mark.django_db
def test_login_throttle_counters_go_a_day_after_their_window_started():
    from funding.console.models import LoginThrottle

    now = timezone.now()
    LoginThrottle.objects.create(key="addr:203.0.113.1", window_started=now - timedelta(days=2), count=9)
    LoginThrottle.objects.create(key="addr:203.0.113.2", window_started=now - timedelta(hours=2), count=9)
    assert retention_purge()["console.LoginThrottle"] == 1
    assert list(LoginThrottle.objects.values_list("key", flat=True)) == ["addr:203.0.113.2"]
