import logging

import pytest

from config.ops.context import request_id_var
from config.ops.logs import log_job_step, mask_account, mask_text

ACCOUNT = "6222020200112233445"


def test_mask_account_keeps_the_last_four_digits():
    assert mask_account(ACCOUNT) == "****3445"
    assert mask_account("6222 0202 0011 2233 445") == "****3445"
    assert mask_account("12") == "****"
    assert mask_account(None) == "****"


def test_mask_text_hides_account_numbers_and_signatures_but_keeps_amounts():
    text = mask_text(f"pay {ACCOUNT}. amount 1500.00 X-Signature: 9f86d081 token=abc Bearer eyJhbGci")
    assert ACCOUNT not in text
    assert "****3445." in text
    assert "1500.00" in text
    assert "9f86d081" not in text and "abc" not in text and "eyJhbGci" not in text


def test_request_id_round_trip(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c1e-0001")
    assert response["X-Request-Id"] == "lb-7f3a9c1e-0001"


@pytest.mark.parametrize("offered", ["", "short", "has spaces in it", "x" * 80, "abc\r\nSet-Cookie: a=b"])
def test_malformed_request_id_is_replaced(client, offered):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=offered)
    generated = response["X-Request-Id"]
    assert generated != offered
    assert len(generated) == 32 and all(c in "0123456789abcdef" for c in generated)


def test_one_json_line_per_request_with_its_id(client, json_logs):
    client.get("/healthz", HTTP_X_REQUEST_ID="req-0123456789")
    lines = [entry for entry in json_logs.lines() if entry["logger"] == "engine.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-0123456789"
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert request_id_var.get() is None  # nothing leaks into the next request on this thread


def test_captured_logs_mask_account_numbers_and_never_write_secrets(json_logs):
    log = logging.getLogger("settlement.test")
    log.info(
        "payout to %s failed",
        ACCOUNT,
        extra={
            "account_no": ACCOUNT,
            "signature": "9f86d081884c7d659a2feaa0c55ad015",
            "api_secret": "s3cr3t-value",
            "payload": {
                "beneficiary_account_no": ACCOUNT, "amount": "1500.00", "headers": {"X-Signature": "ab"},
            },
        },
    )
    try:
        raise ValueError(f"channel refused account {ACCOUNT}")
    except ValueError:
        log.exception("channel error")

    text = json_logs.text
    assert ACCOUNT not in text
    assert "9f86d081884c7d659a2feaa0c55ad015" not in text
    assert "s3cr3t-value" not in text
    first, second = json_logs.lines()
    assert first["message"] == "payout to ****3445 failed"
    assert first["account_no"] == "****3445"
    assert first["signature"] == "[redacted]"
    assert first["payload"] == {
        "beneficiary_account_no": "****3445", "amount": "1500.00", "headers": {"X-Signature": "[redacted]"},
    }
    assert "****3445" in second["exc"]


@pytest.mark.django_db
def test_client_errors_are_logged_as_warnings(client, json_logs):
    client.get("/no-such-page", HTTP_X_REQUEST_ID="req-missing-0001")
    (line,) = [entry for entry in json_logs.lines() if entry["logger"] == "engine.request"]
    assert (line["level"], line["status"], line["request_id"]) == ("WARNING", 404, "req-missing-0001")


def test_job_steps_are_one_json_line_each(json_logs):
    log_job_step("close_business_day", "accrue_fees", rows=120, business_date="2026-11-25")
    (line,) = json_logs.lines()
    assert line["logger"] == "engine.job"
    assert (line["job"], line["step"], line["rows"], line["business_date"]) == (
        "close_business_day", "accrue_fees", 120, "2026-11-25",
    )


def test_gunicorn_builds_no_access_log_line_unless_asked():
    """With a logging config (ours, for JSON) gunicorn would build every request's access-log fields."""
    from gunicorn.config import Config

    from config.ops.logs import GunicornLogger

    cfg = Config()
    cfg.set("logconfig_dict", {"version": 1, "disable_existing_loggers": False})
    assert GunicornLogger(cfg).access_log_enabled is False
    cfg.set("accesslog", "-")
    assert GunicornLogger(cfg).access_log_enabled is True
