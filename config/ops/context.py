"""Per-request (or per-task) logging context, carried by contextvars so threads and tasks never mix."""

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
company_var: ContextVar[str | None] = ContextVar("company", default=None)
advance_var: ContextVar[str | None] = ContextVar("advance", default=None)

# What we accept from a caller's X-Request-Id: short, printable, no spaces or quotes (it ends up in logs).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_accept(value: str | None) -> str:
    """The caller's id when it is well formed, otherwise a fresh one (never echo arbitrary input)."""
    if value and _REQUEST_ID.match(value):
        return value
    return request_id_new()


def bind_context(*, company: str | None = None, advance: str | None = None) -> None:
    """Called by the API once it knows the company (authentication) or the advance (a view)."""
    if company is not None:
        company_var.set(company)
    if advance is not None:
        advance_var.set(advance)


def clear_context() -> None:
    request_id_var.set(None)
    company_var.set(None)
    advance_var.set(None)
