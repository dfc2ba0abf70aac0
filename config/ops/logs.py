"""JSON log lines with the request context, account numbers masked and secrets never written."""

import json
import logging
import re
from datetime import UTC, datetime

from config.ops.context import advance_var, company_var, request_id_var

# Keys whose values are never logged, whatever logger passes them in `extra`.
SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|signature|authorization|api[_-]?key|cookie|session|csrf|hmac|private)",
    re.IGNORECASE,
)
ACCOUNT_KEYS = re.compile(r"(account_no|account_number|card_no|acct)", re.IGNORECASE)
# Bank account and card numbers: 12 or more digits in a row (amounts have at most 13 digits before the
# decimal point but are written with one, so "1500.00" stays; a bare 12+ digit run is treated as an account).
_LONG_DIGITS = re.compile(r"(?<![\d.])\d{12,34}(?!\d|\.\d)")
# Header or query-style secrets inside free text: "X-Signature: abc", "signature=abc", "Bearer abc".
_INLINE_SECRET = re.compile(
    r"((?:x-)?(?:signature|api[_-]?secret|secret|password|token)\s*[=:]\s*)(\"?)[^\s\",;&]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "request_id", "company", "advance", "taskName",
}


def mask_account(number: object) -> str:
    """Keep only the last 4 digits of an account or card number: '6222020200112233445' -> '****3445'."""
    text = "" if number is None else str(number)
    digits = re.sub(r"\s", "", text)
    if len(digits) <= 4:
        return "****"
    return "****" + digits[-4:]


def mask_text(text: str) -> str:
    text = _LONG_DIGITS.sub(lambda m: mask_account(m.group(0)), text)
    text = _INLINE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def mask_value(key: str, value: object) -> object:
    if SECRET_KEYS.search(key):
        return REDACTED
    if ACCOUNT_KEYS.search(key):
        return mask_account(value)
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {str(k): mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask_text(str(value))


class RequestContextFilter(logging.Filter):
    """Adds request_id / company / advance from the current context to every record (set on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "company", None) is None:
            record.company = company_var.get()
        if getattr(record, "advance", None) is None:
            record.advance = advance_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Free text is masked; `extra` values are masked by key."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        for name in ("request_id", "company", "advance"):
            value = getattr(record, name, None)
            if value is None and name == "request_id":
                value = request_id_var.get()
            if value is not None:
                entry[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = mask_value(key, value)
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines for `make run`, masked the same way."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return mask_text(super().format(record))


job_logger = logging.getLogger("engine.job")


def log_job_step(job: str, step: str, *, rows: int | None = None, **fields: object) -> None:
    """One JSON line per job step, e.g. log_job_step("close_business_day", "accrue_fees", rows=120)."""
    job_logger.info("%s: %s", job, step, extra={"job": job, "step": step, "rows": rows, **fields})


def _gunicorn_logger_base() -> type:
    from gunicorn.glogging import Logger

    return Logger


class GunicornLogger(_gunicorn_logger_base()):
    """gunicorn's logger with its access log off unless `accesslog` is set.

    The app writes one JSON line per request itself. gunicorn counts its access log as on whenever a logging
    config is given (ours is, for the JSON format of its own lines), and then builds every request's
    access-log fields for a logger that drops them: about 5% of a worker's CPU per request.
    """

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)

    def access(self, resp, req, environ, request_time) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)
