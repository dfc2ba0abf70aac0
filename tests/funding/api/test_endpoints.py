"""Contract 1.5 read endpoints, throttling, pagination, statements, and the OpenAPI schema."""

import io
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command

from funding.models import Company
from tests.funding.api.conftest import advance_body, error_of, signed_client_for

pytestmark = pytest.mark.django_db


def test_credit_line_none_without_an_approved_line(business_day):
    from funding.services.credit_lines import company_create

    company = company_create(code="NOLINE", legal_name="No line", settlement_account_no="31009999999999")
    body = signed_client_for(company).get("/api/v1/credit-line").json()
    assert body["status"] == "none"
    assert (body["approved_limit"], body["available"], body["limit_factors"]) == ("0.00", "0.00", [])
    assert body["business_date"] == "2026-11-25"


def test_credit_line_after_an_advance(api):
    assert api.post("/api/v1/advances", advance_body(("1000.00", "234.56"))).status_code == 201
    body = api.get("/api/v1/credit-line").json()
    assert (body["reserved"], body["outstanding"], body["available"]) == ("1234.56", "0.00", "998765.44")


def test_advance_detail_and_list_with_cursor_pagination(api):
    ids = [
        api.post("/api/v1/advances", advance_body(("10.00",), external_id=f"E{n}")).json()["id"]
        for n in range(5)
    ]
    detail = api.get(f"/api/v1/advances/{ids[0]}")
    assert detail.status_code == 200
    assert detail.json()["external_id"] == "E0"
    assert detail.json()["payouts"][0]["amount"] == "10.00"
    seen = []
    path = "/api/v1/advances?page_size=2&status=reserved"
    while path:
        page = api.get(path)
        assert page.status_code == 200, page.content
        body = page.json()
        assert len(body["results"]) <= 2
        seen += [a["id"] for a in body["results"]]
        path = body["next"] and body["next"].replace("http://testserver", "")
    assert seen == list(reversed(ids))  # newest first, each exactly once
    assert [a["id"] for a in api.get("/api/v1/advances?external_id=E3").json()["results"]] == [ids[3]]
    assert api.get("/api/v1/advances?status=disbursed").json() == {"results": [], "next": None}
    assert len(api.get("/api/v1/advances?business_date=2026-11-25").json()["results"]) == 5
    assert api.get("/api/v1/advances?created_after=2099-01-01T00:00:00Z").json()["results"] == []


def test_repayments_are_listed_with_their_allocations(api, company_line):
    from django.core.management import call_command as run

    from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

    company = company_line[0]
    assert api.get("/api/v1/repayments").json() == {"results": []}
    advance = disbursed_advance(company, "1000.00")  # fee 1000.00 x 0.0003 x 1 day = 0.30
    run("close_business_day", stdout=io.StringIO())  # 2026-11-25 closed; now 2026-11-26, the due date
    credit_settlement(company, "1000.30")
    run("collect_repayments", stdout=io.StringIO())

    results = api.get("/api/v1/repayments").json()["results"]
    assert [(r["business_date"], r["source"], r["amount"]) for r in results] == [
        ("2026-11-26", "settlement_debit", "1000.30")
    ]
    assert results[0]["allocations"] == [
        {"advance_id": advance.public_id, "penalty": "0.00", "fee": "0.30", "principal": "1000.00"}
    ]
    assert api.get("/api/v1/repayments?business_date=2026-11-25").json() == {"results": []}

    day_one = api.get("/api/v1/statements/2026-11-25").json()
    assert {k: day_one[k] for k in ("opening_outstanding", "advanced", "fees", "penalties", "repaid",
                                      "closing_outstanding")} == {
        "opening_outstanding": "0.00", "advanced": "1000.00", "fees": "0.30", "penalties": "0.00",
        "repaid": "0.00", "closing_outstanding": "1000.30",
    }
    day_two = api.get("/api/v1/statements/2026-11-26").json()
    assert (day_two["opening_outstanding"], day_two["repaid"], day_two["closing_outstanding"]) == (
        "1000.30", "1000.30", "0.00"
    )
    assert [(line["type"], line["repaid"]) for line in day_two["lines"]] == [("repayment", "1000.30")]


def test_statement_json_and_csv(api):
    advance = api.post("/api/v1/advances", advance_body(("100.00",))).json()
    statement = api.get("/api/v1/statements/2026-11-25")
    assert statement.status_code == 200
    body = statement.json()
    assert body["business_date"] == "2026-11-25"
    assert [line["id"] for line in body["lines"]] == [advance["id"]]
    assert body["opening_outstanding"] == "0.00"
    csv_response = api.get("/api/v1/statements/2026-11-25?format=csv")
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"].startswith("text/csv")
    rows = csv_response.content.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("company,business_date,currency,type,id")
    assert advance["id"] in rows[1]
    assert any(",summary,closing_outstanding," in r for r in rows)
    assert error_of(api.get("/api/v1/statements/2026-11-25?format=xml"))["code"] == "validation_error"


def test_throttled_per_key_with_retry_after(api, settings, company_line):
    cache.clear()
    settings.API_THROTTLE_RATE = "3/m"
    assert [api.get("/api/v1/credit-line").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/api/v1/credit-line")
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    other = signed_client_for(company_line[0])  # another key has its own budget
    assert other.get("/api/v1/credit-line").status_code == 200


def test_openapi_schema_validates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    schema = json.loads(out.getvalue())
    assert {"/api/v1/advances", "/api/v1/credit-line", "/api/v1/webhook-endpoint"} <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"ApiKey", "Timestamp", "Nonce", "Signature"}
    create = schema["paths"]["/api/v1/advances"]["post"]
    assert {"201", "400", "401", "409", "422", "429"} <= set(create["responses"])


def test_issue_api_key_command(company_line):
    out = io.StringIO()
    call_command("issue_api_key", company_line[0].code, "--json", stdout=out)
    issued = json.loads(out.getvalue())
    assert issued["company"] == company_line[0].code
    from tests.funding.api.conftest import SignedClient

    assert SignedClient(issued["api_key"], issued["api_secret"]).get("/api/v1/credit-line").status_code == 200


def test_seed_demo_is_safe_to_run_again():
    from django.contrib.auth.models import User

    from funding.models import CreditLine
    from ledger.models import Account

    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", "--json", stdout=first)
    call_command("seed_demo", "--json", stdout=second)
    call_command("seed_demo", "--json", stdout=io.StringIO())
    data = json.loads(second.getvalue())  # stdout is one JSON object and nothing else
    assert set(data) == {"base_url", "business_date", "companies", "staff"}
    assert [c["code"] for c in data["companies"]] == ["PAYCO-A", "PAYCO-B", "PAYCO-C"]
    assert sorted(s["role"] for s in data["staff"]) == sorted({
        "credit_officer",
        "credit_approver",
        "operations",
        "finance",
        "auditor",
    })
    for c in data["companies"]:
        assert set(c) == {
            "code",
            "api_key",
            "api_secret",
            "webhook_secret",
            "settlement_account",
            "approved_limit",
        }
        company = Company.objects.get(code=c["code"])
        assert CreditLine.objects.get(company=company).status == "active"
        assert company.api_keys.filter(revoked_at__isnull=True).count() == 2
    assert Account.objects.get(kind="settlement", owner="PAYCO-A").available == 200000
    assert User.objects.filter(username__startswith="demo_").count() == 5
    from tests.funding.api.conftest import SignedClient

    c = data["companies"][0]
    body = SignedClient(c["api_key"], c["api_secret"]).get("/api/v1/credit-line").json()
    assert (body["status"], body["own_funds_available"]) == ("active", "200000.00")


@pytest.mark.parametrize("own_funds", [None, "1000.00"])
def test_create_answers_the_same_bytes_as_get_right_after(api, company_line, own_funds):
    """POST builds its 201 from the objects it created; it must be exactly what GET then reads back."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.settlement.nightly_helpers import credit_settlement

    if own_funds:
        credit_settlement(company_line[0], own_funds)
    with CaptureQueriesContext(connection) as queries:
        created = api.post("/api/v1/advances", advance_body(("600.00", "700.00", "0.01")))
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["own_funds_amount"] == (own_funds or "0.00")
    assert [p["attempts"] for p in body["payouts"]] == [[], [], []]
    fetched = api.get(f"/api/v1/advances/{body['id']}")
    assert fetched.status_code == 200
    assert created.content == fetched.content
    # Nothing is read back after the advance and its payouts were written.
    sql = [q["sql"] for q in queries.captured_queries]
    assert not any("settlement_payoutattempt" in s for s in sql), sql
    assert sum(s.startswith('SELECT') and 'FROM "funding_advance"' in s for s in sql) == 0, sql


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_an_unknown_api_path_answers_404_in_the_contract_shape_for_every_method(method):
    from django.test import Client

    response = getattr(Client(enforce_csrf_checks=True), method)("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such resource.", "details": {}}}


def test_statement_csv_quotes_a_company_s_formula_text(api):
    import csv

    advance = api.post("/api/v1/advances", advance_body(("100.00",), external_id="=1+2")).json()
    response = api.get("/api/v1/statements/2026-11-25?format=csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response["Content-Disposition"].startswith('attachment; filename="statement-')
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1][3:6] == ["advance", advance["id"], "'=1+2"]
    assert rows[0][7] == "advanced" and rows[1][7] == "0.00"  # nothing disbursed yet
