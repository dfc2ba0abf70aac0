"""OpenAPI: the signature scheme and the error responses every operation can give."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

SIGNATURE_DOC = """Every request carries four headers: `X-Api-Key` (the key id), `X-Timestamp` (Unix seconds),
`X-Nonce` (16-64 of `[A-Za-z0-9_-]`, never reused by the key) and `X-Signature`: lowercase hex
HMAC-SHA256, keyed with the key's secret, of

    METHOD \\n PATH_WITH_QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(raw body))

(fields joined by a newline, no trailing newline; the empty body hashes to e3b0c442...).
Timestamps more than 300 s off answer `401 stale_timestamp`; a nonce seen within 15 minutes answers
`401 replayed_request`; anything else wrong answers `401 authentication_failed`."""


class SignatureAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "funding.api.authentication.SignatureAuthentication"
    name = ["ApiKey", "Timestamp", "Nonce", "Signature"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": SIGNATURE_DOC},
            {"type": "apiKey", "in": "header", "name": "X-Timestamp", "description": "Unix time in seconds."},
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Nonce",
                "description": "Unique per key, 16-64 chars.",
            },
            {"type": "apiKey", "in": "header", "name": "X-Signature", "description": "See ApiKey."},
        ]


API_DESCRIPTION = """T+0 advance funding for payment companies (integration contract, version 1).

**Authentication.** Every request under `/api/v1/` is signed; see the `ApiKey` security scheme. Only this
schema and the docs page are served without a signature.

**Errors.** Every error body is `{"error": {"code", "message", "details"}}` with a stable snake_case `code`:
`validation_error` (400; `details` maps each offending field, dotted for nested ones such as
`payouts.2.amount`, to a list of messages; also a missing or malformed `Idempotency-Key`, bad JSON, a body
over the size limit, bad query parameters), `authentication_failed` / `stale_timestamp` / `replayed_request`
(401), `not_found` (404, also for another company's ids), `method_not_allowed` (405),
`unsupported_media_type` (415), `duplicate_external_id` / `idempotency_key_reused` / `request_in_progress` /
`invalid_state` (409), `insufficient_limit` (details `available`, `requested`, and `daily_remaining` where
the line's daily cap decided), `credit_line_frozen`, `credit_line_inactive` (no approved line, suspended,
expired or past its `valid_to`), `company_suspended`, `business_day_closed`, `calendar_unavailable` (the due
date would fall in a calendar year that is not published), `outside_channel_hours` (details name each payout,
`payouts.N.amount`, that no channel can pay on the current business date) (422; nothing is held),
`rate_limited` (429, with `Retry-After` in seconds, per API key).

**Credit line.** `effective_limit` is the minimum of `limit_factors`, each with its inputs (flow: `multiple`,
`base` = average daily credits to the settlement account over the window, `as_of`; margin: `multiple`,
`base` = margin-deposit balance, `as_of`), recomputed at approval, at every approved change of the limit or
its factors, and at end of day. `daily_cap` (null: none) bounds the line's part of the advances accepted on
one business date (`advanced_today`, cancelled advances excluded); `available` is
`max(0, min(effective_limit - reserved - outstanding, daily_cap - advanced_today))`.

**Due for what actually left the bank.** An advance whose payout is still `unknown` or in `manual_review`
stays `disbursing`, but what its succeeded payouts paid (`disbursed_amount`, its `fee`,
`outstanding_amount`) is owed at once: due on `due_date`, collected, made `overdue` and charged penalty like
any other advance. The unknown amount stays in the line's `reserved`. If that payout later succeeds, its
amount and fee are added and due at the next collection (penalty only from the first end of day that finds it
unpaid); if it fails, it is released. An advance is `repaid` only once every payout is final; an `overdue`
advance whose owed part is repaid while a payout is still open goes back to `disbursing`.

**Fees.** Each payout shows its `value_date` (the business date its funds left the bank); the fee counts the
calendar days from each succeeded payout's value date to `due_date`.

**Money.** Amounts are JSON strings, > 0, at most 2 fraction digits, at most 9999999999999.99; responses
always show 2 fraction digits. `currency` is `CNY`.

**Idempotency.** Every POST needs `Idempotency-Key` (1-64 printable ASCII). The same key with the same
method, path and body (compared as parsed JSON) returns the stored response again, status and body, with
`Idempotent-Replayed: true`; this includes validation errors and business rejections. Another body or path
with the key: 409 `idempotency_key_reused`; while the first request runs: 409 `request_in_progress` (retry
shortly). Keys are per company and kept at least 7 days.

**Lists.** `GET /api/v1/advances` is newest first; follow `next` (null on the last page). `page_size` is
1-200 (default 50); anything else is a `validation_error`. Unknown query parameters are ignored.

**Statements.** `GET /api/v1/statements/{business_date}`: a date after the current business date is
`not_found`; `?format=csv` returns `text/csv` with one row per line and one `summary` row per total (its
name in `id`, its value in `amount`). The CSV starts with a UTF-8 byte order mark (for Excel; decode with
`utf-8-sig`), and a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with
`'` (formula injection); cells that are plain numbers are never prefixed.

**Webhooks.** `PUT /api/v1/webhook-endpoint` registers the HTTPS URL and returns a fresh signing secret
once. Each event is POSTed with headers `X-Event-Id`, `X-Event-Type`, `X-Timestamp` and `X-Signature` =
hex HMAC-SHA256(secret, `X-Timestamp + "." + raw body`); the body is
`{"id", "type", "created_at", "data"}` where `data` carries the resource and its increasing `version`.
Any 2xx within 10 s acknowledges. Otherwise the event is retried after 15s, 15s, 30s, 3m, 10m, 20m, 30m,
30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h (over 24 hours), then marked failed; the bank's staff can redeliver it.
Deliveries are at least once: deduplicate on `X-Event-Id` and ignore events with an older `version`.
Credit-line events (`data` = the credit line as `GET /api/v1/credit-line` shows it): `credit_line.frozen`,
`credit_line.unfrozen`, `credit_line.limit_changed`, `credit_line.suspended`, `credit_line.reactivated`,
`credit_line.expired`, and `credit_line.threshold_reached` (plus `threshold`, e.g. `"0.80"`: sent once per
business date when utilisation `(reserved + outstanding) / effective_limit` first reaches each of the line's
`limit_thresholds`, default 0.80 and 0.95).
"""

ERROR_REF = {"$ref": "#/components/schemas/Error"}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "`true` when this is the stored response of an earlier request with this key.",
    }
}

COMMON_ERRORS = {
    "400": "validation_error: details map each bad field (dotted path, e.g. payouts.2.amount) to messages.",
    "401": "authentication_failed, stale_timestamp or replayed_request.",
    "404": "not_found (unknown id, or another company's).",
    "429": "rate_limited: too many requests for this API key; see the Retry-After header.",
}
BODY_ERRORS = {"415": "unsupported_media_type: send application/json."}


def _error_response(description: str, with_retry_after: bool = False) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
    if with_retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    return response


def add_error_responses(result, generator, request, public):
    """Postprocessing hook: document the common error responses on every /api/v1/ operation."""
    result.setdefault("info", {})["description"] = API_DESCRIPTION
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "description": "Stable snake_case code."},
                        "message": {"type": "string"},
                        "details": {"type": "object", "additionalProperties": True},
                    },
                }
            },
        },
    )
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            errors = dict(COMMON_ERRORS)
            if method in ("post", "put"):
                errors.update(BODY_ERRORS)
            for status, description in errors.items():
                responses.setdefault(status, _error_response(description, status == "429"))
            for status, response in responses.items():
                if status in ("409", "422") and "content" in response:
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            if method == "post":
                for status, response in responses.items():
                    if status not in ("401", "429", "415"):
                        response.setdefault("headers", {}).update(REPLAYED_HEADER)
            if path.startswith("/api/v1/statements/") and method == "get":
                responses["200"].setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
    return result
