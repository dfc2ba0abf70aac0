"""Request id, one JSON log line per request, the latency histogram, and the health endpoints."""

import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse

from config.ops import metrics
from config.ops.context import (
    advance_var,
    clear_context,
    company_var,
    request_id_accept,
    request_id_var,
)

request_logger = logging.getLogger("engine.request")

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# URL keyword arguments that name an advance, so the request line can carry it.
_ADVANCE_KWARGS = ("advance_id", "public_id", "advance")


class RequestIdMiddleware:
    """Outermost middleware: binds the request id for every log line of the request and logs the request."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        clear_context()
        # META, not request.headers: nothing else on the API's path needs the headers' dict built.
        request_id = request_id_accept(request.META.get(_REQUEST_ID_META))
        request_id_var.set(request_id)
        request.request_id = request_id
        started = time.monotonic()
        response = self.get_response(request)
        elapsed = time.monotonic() - started
        response[REQUEST_ID_HEADER] = request_id
        self._log(request, response, elapsed)
        clear_context()
        return response

    def _log(self, request: HttpRequest, response: HttpResponse, elapsed: float) -> None:
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else ("unmatched" if match is None else "")
        if match is not None:
            advance = next((str(match.kwargs[k]) for k in _ADVANCE_KWARGS if k in match.kwargs), None)
            if advance and advance_var.get() is None and request.path.startswith("/api/"):
                advance_var.set(advance)
        company = getattr(request, "company", None)
        if company is not None and company_var.get() is None:
            company_var.set(getattr(company, "code", str(company)))
        if getattr(response, "_engine_health", False):
            route = request.path.strip("/")
        status = response.status_code
        metrics.http_request_observe(request.method or "", route or "unmatched", status, elapsed)
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        request_logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )


class HealthCheckMiddleware:
    """Answers /healthz, /readyz and /metrics before host validation, HTTPS redirects, sessions and CSRF.

    Load balancers probe by IP over plain HTTP; those probes must neither be redirected nor rejected for
    their Host header, and must not create sessions.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from config.ops import health

        if request.method in ("GET", "HEAD"):
            if request.path == "/healthz":
                return _mark(health.healthz(request))
            if request.path == "/readyz":
                return _mark(health.readyz(request))
            if request.path == "/metrics":
                return _mark(health.metrics_view(request))
        return self.get_response(request)


def _mark(response: HttpResponse | JsonResponse) -> HttpResponse:
    response._engine_health = True
    response["Cache-Control"] = "no-store"
    return response
