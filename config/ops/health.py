"""Liveness, readiness and metrics: cheap, unauthenticated (metrics: restricted), leaking nothing."""

import hmac
import ipaddress
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

OK, FAIL = "ok", "fail"
_migrations_applied = False  # once true in this process it stays true: the code on disk does not change


def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. Touches nothing else, so a database outage does not restart every API process."""
    return JsonResponse({"status": OK})


# What decides readiness: without these the process cannot serve a single request correctly.
BLOCKING = ("database", "migrations")
# Reported, never failing the probe: a broker or cache outage, or a calendar about to run out, is for the
# operators' alerts; taking every API process out of the load balancer would turn it into a full outage
# (reads, credit-line checks and the admin work without them; advances are refused with a clear code).
WARNINGS = ("broker", "cache", "business_date", "calendar")
NEEDS_DATABASE = ("migrations", "business_date", "calendar")
DEGRADED = "degraded"


def readyz(request: HttpRequest) -> JsonResponse:
    """503 only if the database does not answer or migrations are missing; other checks are warnings (200).

    Body: {"status": "ok" | "degraded" | "fail", "checks": {name: "ok" | "fail"}, "warnings": [names]}.
    Details of a failure go to the log, never to the caller.
    """
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("migrations", _check_migrations),
        ("broker", _check_broker),
        ("cache", _check_cache),
        ("business_date", _check_business_date),
        ("calendar", _check_calendar),
    ):
        if checks.get("database") == FAIL and name in NEEDS_DATABASE:
            checks[name] = FAIL  # no point asking a database that does not answer
            continue
        try:
            check()
            checks[name] = OK
        except Exception:
            logger.warning("readiness check %s failed", name, exc_info=True)
            checks[name] = FAIL
    ready = all(checks[name] == OK for name in BLOCKING)
    warnings = [name for name in WARNINGS if checks[name] != OK]
    status = FAIL if not ready else DEGRADED if warnings else OK
    return JsonResponse({"status": status, "checks": checks, "warnings": warnings}, status=200 if ready else 503)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_migrations() -> None:
    global _migrations_applied
    if _migrations_applied:
        return
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError("unapplied migrations")
    _migrations_applied = True


def _check_broker() -> None:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    timeout = settings.READINESS_BROKER_TIMEOUT
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    options.pop("confirm_publish", None)
    options["max_retries"] = 0
    with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        if url.startswith("redis"):
            conn.default_channel.client.ping()


def _check_cache() -> None:
    import secrets

    from django.core.cache import cache

    probe = secrets.token_hex(8)
    cache.set("readyz:probe", probe, 30)
    if cache.get("readyz:probe") != probe:
        raise RuntimeError("the cache did not return what was just stored")


def _check_business_date() -> None:
    from funding.services.calendar import business_date_current

    business_date_current()


def _check_calendar() -> None:
    """The business date itself is in a published year. A missing FUTURE year does not make the engine
    unready: it serves on, advances maturing in that year are refused (calendar_unavailable), and staff are
    warned from 30 days ahead (console banner, metric engine_calendar_publication_due)."""
    from funding.services.calendar import business_date_current, is_business_day

    is_business_day(business_date_current())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(request):
        return HttpResponse(status=403)
    from config.ops.metrics import metrics_exposition

    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)


def metrics_access_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    if token and offered.startswith("Bearer ") and hmac.compare_digest(offered[7:].encode(), token.encode()):
        return True
    # REMOTE_ADDR only: a forwarded-for header is the client's to forge.
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)
