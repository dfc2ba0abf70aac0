"""Schemathesis fuzzes every operation of our OpenAPI schema against the running app (live server, signed
requests): no 5xx, and every response matches the schema (status code, content type, body)."""

import hashlib
import hmac
import os
import secrets
import time

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from funding.api.services import api_key_issue  # noqa: E402
from tests.factories import calendar_and_business_date, company_with_line  # noqa: E402
from tests.funding.api.conftest import advance_body  # noqa: E402

EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "12"))  # raise for a deeper local run
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class SignAuth(requests.auth.AuthBase):
    """Signs the request exactly as sent (path with query, raw body); adds an Idempotency-Key to POSTs."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret
        self.signed = 0

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        self.signed += 1
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = "\n".join([r.method, r.path_url, timestamp, nonce, hashlib.sha256(body).hexdigest()])
        r.headers.update(
            {
                "X-Api-Key": self.key_id,
                "X-Timestamp": timestamp,
                "X-Nonce": nonce,
                "X-Signature": hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest(),
            }
        )
        if r.method == "POST" and not r.headers.get("Idempotency-Key"):
            r.headers["Idempotency-Key"] = secrets.token_hex(8)
        return r


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fuzz_the_schema_finds_no_5xx_and_no_schema_violation(live_server, settings):
    settings.API_THROTTLE_RATE = "100000/s"
    calendar_and_business_date()
    company, _ = company_with_line(limit="5000000.00")
    issued = api_key_issue(company=company, actor_label="fuzz")
    session = requests.Session()
    session.auth = SignAuth(issued.key_id, issued.secret)
    # A real advance so that detail/cancel operations also meet existing ids.
    created = session.post(f"{live_server.url}/api/v1/advances", json=advance_body())
    assert created.status_code == 201, created.text

    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    started = time.monotonic()
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                if (
                    case.path_parameters
                    and "advance_id" in case.path_parameters
                    and secrets.randbelow(3) == 0
                ):
                    case.path_parameters["advance_id"] = created.json()["id"]
                case.call_and_validate(base_url=live_server.url, session=session, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}")
        budget = 120 * max(1, EXAMPLES_PER_OPERATION // 12)
        assert time.monotonic() - started < budget, "fuzzing took too long"
    print(f"fuzz: {session.auth.signed} signed requests")
    assert not failures, "\n\n".join(failures)
    operations = len(list(schema.get_all_operations()))
    assert session.auth.signed >= operations * 2 * 3, "the fuzzer sent too few requests to mean anything"
