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


ERROR_REF = {"$ref": "#/components/schemas/Error"}

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
            if path.startswith("/api/v1/statements/") and method == "get":
                responses["200"].setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
    return result
