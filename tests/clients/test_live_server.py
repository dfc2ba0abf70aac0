"""The Python client against the engine served by gunicorn: every resource, pagination and the typed errors.

The server runs in its own processes on the test database (transactional tests: what a test writes is
committed, so gunicorn sees it). Dispatch and webhook delivery stay off: no broker or worker is needed.
"""

import csv
import io
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

import advance_client  # noqa: E402
from advance_client import (  # noqa: E402
    AdvanceClient,
    AuthenticationError,
    DuplicateExternalId,
    IdempotencyError,
    InsufficientLimit,
    InvalidState,
    NotFound,
    ValidationError,
)

from funding.api.services import api_key_issue  # noqa: E402
from tests.factories import calendar_and_business_date, company_with_line  # noqa: E402
from tests.proof.conftest import Gunicorn  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "API_THROTTLE_RATE": "100000/s",
        "DISBURSEMENT_DISPATCH_ON_COMMIT": "false",
        "WEBHOOK_ENQUEUE_ON_COMMIT": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CACHE_URL", None)
    gunicorn = Gunicorn(env, workers=2)
    yield f"http://127.0.0.1:{gunicorn.port}"
    gunicorn.stop()


@pytest.fixture
def company():
    calendar_and_business_date()
    company, _line = company_with_line(limit="1000000.00")
    return company


@pytest.fixture
def client(server, company) -> AdvanceClient:
    issued = api_key_issue(company=company, actor_label="test")
    return AdvanceClient(server, api_key=issued.key_id, api_secret=issued.secret, retries=1, backoff=0.05)


def payouts(*amounts: str) -> list[dict]:
    return [
        {"external_id": f"M{n}", "beneficiary_name": "Shanghai Example Trading Co.",
         "account_no": "6222020200112233445", "bank_code": "ICBC", "amount": amount}
        for n, amount in enumerate(amounts, start=1)
    ]


def test_advances_create_get_list_every_page_and_cancel(client):
    line = client.credit_line()
    assert (line["status"], line["available"], line["business_date"]) == ("active", "1000000.00", "2026-11-25")
    created = [
        client.advances.create(external_id=f"SETTLE-{n}", amount="150.00", payouts=payouts("100.00", "50.00"),
                               use_own_funds=False)
        for n in range(5)
    ]
    assert [a["status"] for a in created] == ["reserved"] * 5
    assert (created[0]["amount"], created[0]["advanced_amount"], len(created[0]["payouts"])) == ("150.00", "150.00", 2)
    assert client.advances.get(created[2]["id"])["external_id"] == "SETTLE-2"

    listed = list(client.advances.list(page_size=2))  # three pages, followed through `next`
    assert [a["id"] for a in listed] == [a["id"] for a in reversed(created)]
    first_page = client.advances.page(page_size=2)
    assert len(first_page["results"]) == 2 and first_page["next"]
    assert [a["id"] for a in client.advances.list(external_id="SETTLE-3")] == [created[3]["id"]]

    cancelled = client.advances.cancel(created[0]["id"])
    assert cancelled["status"] == "cancelled"
    assert client.credit_line()["reserved"] == "600.00"
    with pytest.raises(InvalidState) as twice:
        client.advances.cancel(created[0]["id"])
    assert (twice.value.status, twice.value.code) == (409, "invalid_state")


def test_the_typed_errors_of_the_live_api(client, server):
    with pytest.raises(ValidationError) as invalid:
        client.advances.create(external_id="SETTLE-X", amount="1.00", payouts=[])
    assert invalid.value.status == 400 and "payouts" in invalid.value.fields

    with pytest.raises(InsufficientLimit) as refused:
        client.advances.create(external_id="SETTLE-BIG", amount="2000000.00", payouts=payouts("2000000.00"))
    assert (refused.value.available, refused.value.requested) == (Decimal("1000000.00"), Decimal("2000000.00"))
    assert client.credit_line()["reserved"] == "0.00"  # nothing held

    with pytest.raises(NotFound):
        client.advances.get("adv_" + "0" * 26)

    key = str(uuid.uuid4())
    client.advances.create(external_id="SETTLE-A", amount="10.00", payouts=payouts("10.00"), idempotency_key=key)
    replay = client.advances.create(external_id="SETTLE-A", amount="10.00", payouts=payouts("10.00"),
                                    idempotency_key=key)
    assert replay["external_id"] == "SETTLE-A"
    with pytest.raises(IdempotencyError) as reused:
        client.advances.create(external_id="SETTLE-B", amount="10.00", payouts=payouts("10.00"), idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(DuplicateExternalId):
        client.advances.create(external_id="SETTLE-A", amount="10.00", payouts=payouts("10.00"))

    stranger = AdvanceClient(server, api_key=client.api_key, api_secret="sk_wrong", retries=0)
    with pytest.raises(AuthenticationError) as denied:
        stranger.credit_line()
    assert (denied.value.status, denied.value.code) == (401, "authentication_failed")


def test_repayments_statements_and_the_webhook_endpoint(client):
    client.advances.create(external_id="SETTLE-S", amount="150.00", payouts=payouts("150.00"))
    assert list(client.repayments.list()) == []
    statement = client.statements.get("2026-11-25")
    assert statement["business_date"] == "2026-11-25"
    rows = list(csv.DictReader(io.StringIO(client.statements.csv("2026-11-25"))))
    assert rows and "id" in rows[0]
    with pytest.raises(NotFound):
        client.statements.get("2026-11-26")  # after the current business date

    assert client.webhook_endpoint.get() == {"url": None}
    registered = client.webhook_endpoint.put("http://127.0.0.1:9/hooks")
    assert registered["url"] == "http://127.0.0.1:9/hooks" and registered["secret"]
    assert client.webhook_endpoint.get() == {"url": "http://127.0.0.1:9/hooks"}


def _listed(fetch, expected: list, timeout: float = 60) -> list:
    """The listing shows an event once every transaction older than it has ended, anywhere on the PostgreSQL
    server (funding/api/selectors.py event_list): other sessions' open transactions delay it, briefly."""
    deadline = time.monotonic() + timeout
    while (listed := list(fetch())) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return listed


def test_events_catch_up_after_an_event_id(client, company):
    from funding.models import CreditLine, WebhookEvent
    from funding.services.credit_lines import credit_line_freeze, credit_line_unfreeze_automatically

    # The line's approval already wrote its limit_changed event.
    [approved] = [e.payload for e in WebhookEvent.objects.filter(company=company)]
    assert approved["type"] == "credit_line.limit_changed"
    assert _listed(client.events.list, [approved]) == [approved]
    line = CreditLine.objects.get(company=company)
    credit_line_freeze(credit_line=line, actor=None, actor_label="test", reason="overdue elsewhere")
    CreditLine.objects.filter(pk=line.pk).update(auto_unfreeze=True)
    credit_line_unfreeze_automatically(credit_line=line, reason="cleared", actor_label="test")
    written = [e.payload for e in WebhookEvent.objects.filter(company=company).order_by("id")]
    assert [e["type"] for e in written] == ["credit_line.limit_changed", "credit_line.frozen", "credit_line.unfrozen"]

    # Three pages, each event as its webhook body.
    assert _listed(lambda: client.events.list(page_size=1), written) == written
    assert list(client.events.list(after=written[0]["id"])) == written[1:]
    assert list(client.events.list(type="credit_line.frozen")) == written[1:2]


def test_webhook_endpoint_test_pings_the_registered_url(client):
    from tests.proof.conftest import WebhookReceiver

    receiver = WebhookReceiver()
    try:
        registered = client.webhook_endpoint.put(receiver.url(client.credit_line()["company"]))
        receiver.secrets[client.credit_line()["company"]] = registered["secret"]
        answer = client.webhook_endpoint.test()
    finally:
        receiver.stop()
    assert answer["status_code"] == 200 and answer["url"] == registered["url"]  # and the time it took
    [ping] = receiver.received.values()
    assert ping["type"] == "ping"
    assert receiver.bad == []


def test_the_user_agent_names_the_client_version():
    assert advance_client.USER_AGENT.startswith(f"advance-client-python/{advance_client.__version__} ")
