from decimal import Decimal

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from config.ops import metrics
from funding.errors import InsufficientLimit
from funding.services.advances import advance_request
from tests.factories import company_with_line, payout_inputs


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_advance_counters_move_on_accept_and_reject(business_day):
    company, _ = company_with_line(limit="1000.00")
    accepted = sample("engine_advances_requested_total", outcome="accepted", reason="none")
    accepted_amount = sample("engine_advance_amount_yuan_total", outcome="accepted")
    rejected = sample("engine_advances_requested_total", outcome="rejected", reason="insufficient_limit")

    advance_request(company=company, external_id="A1", amount=Decimal("600.00"),
                    payouts=payout_inputs("600.00"))
    with pytest.raises(InsufficientLimit):
        advance_request(company=company, external_id="A2", amount=Decimal("500.00"),
                        payouts=payout_inputs("500.00"))

    assert sample("engine_advances_requested_total", outcome="accepted", reason="none") == accepted + 1
    assert sample("engine_advance_amount_yuan_total", outcome="accepted") == accepted_amount + 600.0
    assert sample("engine_advances_requested_total", outcome="rejected",
                  reason="insufficient_limit") == rejected + 1


def test_metrics_endpoint_serves_counters_and_database_gauges(client, business_day):
    company, _ = company_with_line(limit="1000.00")
    advance_request(company=company, external_id="B1", amount=Decimal("250.00"),
                    payouts=payout_inputs("250.00"))
    metrics.payout_attempt("demo-bank", "succeeded")
    metrics.webhook_delivery("retry")
    with metrics.job_timer("accrue_fees") as run:
        run.add(7)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert f'engine_credit_line_utilisation_ratio{{company="{company.code}"}} 0.25' in text
    assert f'engine_credit_line_used_yuan{{company="{company.code}"}} 250.0' in text
    assert "engine_payouts_unknown 0.0" in text
    assert "engine_webhook_backlog " in text
    assert "engine_db_metrics_up 1.0" in text
    assert 'engine_payout_attempts_total{channel="demo-bank",outcome="succeeded"}' in text
    assert 'engine_job_rows_total{job="accrue_fees"}' in text
    assert "engine_http_request_duration_seconds_bucket" in text


def test_request_latency_is_recorded_by_route_pattern(client):
    before = sample("engine_http_request_duration_seconds_count", method="GET", route="healthz", status="2xx")
    client.get("/healthz")
    assert sample("engine_http_request_duration_seconds_count", method="GET", route="healthz",
                  status="2xx") == before + 1


@pytest.mark.django_db
@override_settings(METRICS_ALLOWED_IPS=["10.20.0.0/16"], METRICS_TOKEN="scrape-token-123")
def test_metrics_access_is_restricted(client):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123").status_code == 200
    # A forged forwarded-for header does not count.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.20.3.4").status_code == 403


def test_job_timer_counts_failures_separately():
    before = sample("engine_job_duration_seconds_count", job="unit_job", outcome="error")
    with pytest.raises(RuntimeError), metrics.job_timer("unit_job"):
        raise RuntimeError("boom")
    assert sample("engine_job_duration_seconds_count", job="unit_job", outcome="error") == before + 1


@pytest.mark.parametrize(
    ("current", "days_ahead", "due"),
    [("2026-11-30", 31, 0), ("2026-12-01", 30, 1), ("2026-12-31", 0, 1)],
)
def test_calendar_publication_due_from_30_days_before_the_last_published_day(client, business_day, current,
                                                                              days_ahead, due):
    from funding.models import BusinessDay

    BusinessDay.objects.update(current=current)
    text = client.get("/metrics").content.decode()
    assert f"engine_calendar_published_days_ahead {float(days_ahead)}" in text
    assert f"engine_calendar_publication_due {float(due)}" in text
