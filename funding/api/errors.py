"""The contract's one error shape, {"error": {"code", "message", "details"}}, for all failures under /api/."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from funding.errors import EngineError

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE = 'HMAC-SHA256 realm="api", headers="X-Api-Key X-Timestamp X-Nonce X-Signature"'


class ApiError(exceptions.APIException):
    """An API-level error with a stable code (authentication, idempotency, throttling...)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict | None = None,
        headers: dict | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(message, code)


def error_body(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _text(value: Any) -> str:
    # Error texts may echo client input; keep them printable and short.
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\u0000")[:500]


def flatten_validation(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure -> {"payouts.2.amount": ["..."]}."""
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                key = _text(key)
                if key in ("non_field_errors",):
                    walk(value, path or "non_field_errors")
                else:
                    walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            if node and all(not isinstance(item, dict | list) for item in node):
                out.setdefault(path or "non_field_errors", []).extend(_text(item) for item in node)
            else:
                for index, item in enumerate(node):
                    if item:
                        walk(item, f"{path}.{index}" if path else str(index))
        elif node is not None:
            out.setdefault(path or "non_field_errors", []).append(_text(node))

    walk(detail, prefix)
    return out


DRF_CODES = {
    exceptions.NotAuthenticated: (401, "authentication_failed", "Authentication failed."),
    exceptions.AuthenticationFailed: (401, "authentication_failed", "Authentication failed."),
    exceptions.PermissionDenied: (403, "permission_denied", "You may not do this."),
    exceptions.NotFound: (404, "not_found", "No such resource."),
    exceptions.MethodNotAllowed: (405, "method_not_allowed", "This method is not allowed here."),
    exceptions.NotAcceptable: (406, "not_acceptable", "Only application/json responses are offered."),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type", "Send the body as application/json."),
}


def exception_to_response(exc: Exception) -> Response | None:
    """Map any known exception to the error shape; None for unexpected ones (they become a logged 500)."""
    if isinstance(exc, ApiError):
        headers = dict(exc.headers)
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
        return Response(
            error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=headers
        )
    if isinstance(exc, EngineError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("validation_error", "The request is not valid.", flatten_validation(exc.detail)),
            status=400,
        )
    if isinstance(exc, exceptions.ParseError):
        return Response(
            error_body("validation_error", "The body is not valid JSON.", {"body": [_text(exc.detail)]}),
            status=400,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(
                "validation_error", "The request body is too large.", {"body": ["The body is too large."]}
            ),
            status=400,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("validation_error", "The request is not valid.", {}), status=400)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1) + (0 if exc.wait is None or float(exc.wait).is_integer() else 1)
        wait = max(wait, 1)
        return Response(
            error_body(
                "rate_limited", "Too many requests for this API key; retry later.", {"retry_after": wait}
            ),
            status=429,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    for cls, (status, code, message) in DRF_CODES.items():
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
            return Response(error_body(code, message), status=status, headers=headers)
    if isinstance(exc, exceptions.APIException):
        status = exc.status_code if exc.status_code < 500 else 503
        return Response(error_body(exc.default_code, _text(exc.detail)), status=status)
    return None


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    response = exception_to_response(exc)
    if response is None:
        logger.exception("unexpected error in the API", exc_info=exc)
        return Response(
            error_body("internal_error", "An unexpected error occurred; it has been logged."), status=500
        )
    return response


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("internal_error", "An unexpected error occurred; it has been logged."), status=500
        )
    from django.views.defaults import server_error

    return server_error(request)
