"""OpenAPI: the body of every webhook event (contract 1.6, 1.7), as components and as callbacks of
`PUT /api/v1/webhook-endpoint` (OpenAPI 3.0 has no top-level webhooks; a callback on the registration is
its way to say "the bank will POST this to the URL you gave").

A postprocessing hook, after drf-spectacular has built the resource components the events carry
(`AdvanceOut`, `PayoutOut`, `CreditLineOut`): each event's `data` is that resource as its GET renders it.
"""

# Event type -> the component its `data` holds. Credit-line data is the credit line plus its `version`.
EVENT_DATA = {
    "advance.disbursed": "AdvanceOut",
    "advance.partially_disbursed": "AdvanceOut",
    "advance.failed": "AdvanceOut",
    "advance.repaid": "AdvanceOut",
    "advance.overdue": "AdvanceOut",
    # A payout of the advance was returned (退汇): the advance's new version (returned_amount, fee, amounts).
    "advance.payout_returned": "AdvanceOut",
    "payout.succeeded": "PayoutOut",
    "payout.failed": "PayoutOut",
    "payout.manual_review": "PayoutOut",
    "payout.returned": "PayoutOut",
    "credit_line.frozen": "CreditLineEventData",
    "credit_line.unfrozen": "CreditLineEventData",
    "credit_line.limit_changed": "CreditLineEventData",
    "credit_line.expired": "CreditLineEventData",
    "credit_line.suspended": "CreditLineEventData",
    "credit_line.reactivated": "CreditLineEventData",
    "credit_line.threshold_reached": "CreditLineThresholdEventData",
    "ping": "PingEventData",
}

DELIVERY = """Sent by the bank to the registered URL for every event of the company, at least once and possibly
out of order. Headers: `X-Event-Id` (the event id), `X-Event-Type`, `X-Timestamp` (Unix seconds) and
`X-Signature` = lowercase hex HMAC-SHA256, keyed with the webhook secret, of `X-Timestamp + "." + raw body`.
Verify the signature on the raw bytes, answer any 2xx within 10 s, deduplicate on `id` and ignore an event
whose `data.version` is not newer than the one you hold. Other answers are retried for over 24 hours.
The same bodies are listed by `GET /api/v1/events` (contract 1.7)."""


def component_name(event_type: str) -> str:
    """advance.partially_disbursed -> WebhookEventAdvancePartiallyDisbursed"""
    words = event_type.replace(".", "_").split("_")
    return "WebhookEvent" + "".join(word.capitalize() for word in words)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _event_schema(event_type: str, data: str) -> dict:
    return {
        "type": "object",
        "description": f"Body of a `{event_type}` event.",
        "required": ["id", "type", "created_at", "data"],
        "properties": {
            "id": {"type": "string", "description": "Event id (`evt_...`); deliveries repeat it."},
            "type": {"type": "string", "enum": [event_type]},
            "created_at": {"type": "string", "format": "date-time"},
            "data": _ref(data),
        },
    }


def add_webhook_events(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    if not {"AdvanceOut", "PayoutOut", "CreditLineOut"} <= set(schemas):
        return result  # a partial schema (e.g. filtered by path): the resources are not there to refer to
    version = {"type": "object", "required": ["version"],
               "properties": {"version": {"type": "integer", "description": "Increases with every change."}}}
    schemas["CreditLineEventData"] = {
        "description": "The credit line as GET /api/v1/credit-line renders it, with its version.",
        "allOf": [_ref("CreditLineOut"), version],
    }
    schemas["CreditLineThresholdEventData"] = {
        "description": "The credit line, and the utilisation threshold just reached (e.g. \"0.80\").",
        "allOf": [
            _ref("CreditLineEventData"),
            {"type": "object", "required": ["threshold"], "properties": {"threshold": {"type": "string"}}},
        ],
    }
    schemas["PingEventData"] = {
        "type": "object",
        "description": "Sent by POST /api/v1/webhook-endpoint/test to check a receiver; carries no resource.",
        "additionalProperties": True,
    }
    for event_type, data in EVENT_DATA.items():
        schemas[component_name(event_type)] = _event_schema(event_type, data)
    schemas["WebhookEvent"] = {
        "description": "Any webhook event; `type` tells which.",
        "oneOf": [_ref(component_name(event_type)) for event_type in EVENT_DATA],
        "discriminator": {
            "propertyName": "type",
            "mapping": {event_type: f"#/components/schemas/{component_name(event_type)}" for event_type in EVENT_DATA},
        },
    }
    registration = result.get("paths", {}).get("/api/v1/webhook-endpoint", {}).get("put")
    if registration is not None:
        registration["callbacks"] = {
            "webhookEvent": {
                "{$request.body#/url}": {
                    "post": {
                        "summary": "Webhook event (sent by the bank to your URL)",
                        "description": DELIVERY,
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": _ref("WebhookEvent")}},
                        },
                        "responses": {"2XX": {"description": "Acknowledged; any other answer is retried."}},
                    }
                }
            }
        }
    return result
