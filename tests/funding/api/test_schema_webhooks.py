"""Every webhook event body is in the OpenAPI schema, shaped like what the engine really sends."""

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from funding.api.schema_webhooks import EVENT_DATA, component_name
from funding.models import AdvanceStatus, CreditLine, WebhookEvent
from funding.services.credit_lines import credit_line_freeze

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def schema() -> dict:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


def _types_the_code_emits() -> set[str]:
    """Event types written as literals next to an emit (the advance ones are the advance's final status)."""
    found = set()
    for package in ("funding", "settlement"):
        for path in (ROOT / package).rglob("*.py"):
            for line in path.read_text().splitlines():
                if "emit" in line or "event_type" in line:
                    found |= set(re.findall(r'"((?:advance|payout|credit_line)\.[a-z_]+)"', line))
    final = {AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED, AdvanceStatus.FAILED}
    return found | {f"advance.{status}" for status in final}


def test_every_event_type_the_engine_emits_and_the_contract_names_has_a_body_in_the_schema(schema):
    emitted = _types_the_code_emits()
    assert {"payout.succeeded", "credit_line.frozen", "advance.repaid", "advance.overdue"} <= emitted
    contract = {
        "advance.disbursed", "advance.partially_disbursed", "advance.failed", "advance.repaid", "advance.overdue",
        "payout.succeeded", "payout.failed", "payout.manual_review", "payout.returned", "credit_line.frozen",
        "credit_line.unfrozen", "credit_line.limit_changed", "credit_line.expired", "credit_line.suspended",
        "credit_line.reactivated", "credit_line.threshold_reached", "ping",
    }
    assert emitted | contract == set(EVENT_DATA)
    schemas = schema["components"]["schemas"]
    union = schemas["WebhookEvent"]
    assert union["discriminator"]["mapping"] == {
        event_type: f"#/components/schemas/{component_name(event_type)}" for event_type in EVENT_DATA
    }
    assert schemas["WebhookEventPayoutManualReview"]["properties"]["type"] == {
        "type": "string", "enum": ["payout.manual_review"],
    }
    assert schemas["WebhookEventAdvanceRepaid"]["properties"]["data"] == {"$ref": "#/components/schemas/AdvanceOut"}


def test_the_webhook_endpoint_registration_documents_the_deliveries_as_a_callback(schema):
    callback = schema["paths"]["/api/v1/webhook-endpoint"]["put"]["callbacks"]["webhookEvent"]
    delivery = callback["{$request.body#/url}"]["post"]
    assert delivery["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WebhookEvent"
    }
    assert "X-Signature" in delivery["description"]


def _properties(schemas: dict, name: str) -> set[str]:
    schema = schemas[name]
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        keys |= _properties(schemas, part["$ref"].rsplit("/", 1)[1]) if "$ref" in part else set(part["properties"])
    return keys


@pytest.mark.django_db
def test_a_real_event_body_has_exactly_the_documented_fields(schema, company_line):
    company, line = company_line
    credit_line_freeze(credit_line=CreditLine.objects.get(pk=line.pk), actor=None, actor_label="test",
                       reason="schema check")
    payload = WebhookEvent.objects.get(company=company, type="credit_line.frozen").payload
    schemas = schema["components"]["schemas"]
    documented = schemas["WebhookEventCreditLineFrozen"]
    assert set(payload) == set(documented["properties"]) == set(documented["required"])
    assert set(payload["data"]) == _properties(schemas, "CreditLineEventData")

