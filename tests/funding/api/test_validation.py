"""Contract 1.2/1.3/1.5: strict input validation, one error shape, never a 5xx, nothing held on rejection."""

import json

import pytest

from funding.models import Advance, CreditLine
from tests.funding.api.conftest import advance_body, error_of

pytestmark = pytest.mark.django_db


def _mutate(path: str, value):
    def apply(body):
        node = body
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return body

    return apply


DELETE = object()
THREE = ("100.00", "200.00", "300.00")

CASES = [
    # (what, mutation, expected details path)
    ("amount as a number", _mutate("amount", 600), "amount"),
    ("amount with exponent", _mutate("amount", "6e2"), "amount"),
    ("amount with 3 decimals", _mutate("amount", "600.005"), "amount"),
    ("amount zero", _mutate("amount", "0"), "amount"),
    ("amount zero with decimals", _mutate("amount", "0.00"), "amount"),
    ("amount negative", _mutate("amount", "-600.00"), "amount"),
    ("amount NaN", _mutate("amount", "NaN"), "amount"),
    ("amount Infinity", _mutate("amount", "Infinity"), "amount"),
    ("amount too large", _mutate("amount", "10000000000000.00"), "amount"),
    ("amount with spaces", _mutate("amount", " 600.00"), "amount"),
    ("amount missing", _mutate("amount", DELETE), "amount"),
    ("currency USD", _mutate("currency", "USD"), "currency"),
    ("currency lower case", _mutate("currency", "cny"), "currency"),
    ("external_id too long", _mutate("external_id", "E" * 65), "external_id"),
    ("external_id empty", _mutate("external_id", ""), "external_id"),
    ("external_id a number", _mutate("external_id", 12345), "external_id"),
    ("external_id NUL", _mutate("external_id", "SETTLE\x00"), "external_id"),
    ("use_own_funds a string", _mutate("use_own_funds", "yes"), "use_own_funds"),
    ("payouts empty", _mutate("payouts", []), "payouts"),
    ("payouts not a list", _mutate("payouts", {"a": 1}), "payouts"),
    ("payouts do not add up", _mutate("payouts.2.amount", "299.99"), "payouts"),
    ("payout amount bad", _mutate("payouts.2.amount", "1.005"), "payouts.2.amount"),
    ("payout amount number", _mutate("payouts.1.amount", 200), "payouts.1.amount"),
    ("account_no too short", _mutate("payouts.1.account_no", "1234567"), "payouts.1.account_no"),
    ("account_no too long", _mutate("payouts.1.account_no", "1" * 33), "payouts.1.account_no"),
    (
        "account_no with letters",
        _mutate("payouts.0.account_no", "62220202001122334X"),
        "payouts.0.account_no",
    ),
    (
        "account_no trailing newline",
        _mutate("payouts.0.account_no", "6222020200112233\n"),
        "payouts.0.account_no",
    ),
    ("beneficiary empty", _mutate("payouts.0.beneficiary_name", ""), "payouts.0.beneficiary_name"),
    ("beneficiary 101 chars", _mutate("payouts.0.beneficiary_name", "B" * 101), "payouts.0.beneficiary_name"),
    (
        "beneficiary NUL",
        _mutate("payouts.0.beneficiary_name", "Shanghai\x00Co"),
        "payouts.0.beneficiary_name",
    ),
    (
        "beneficiary lone surrogate",
        _mutate("payouts.0.beneficiary_name", "\ud800"),
        "payouts.0.beneficiary_name",
    ),
    ("bank_code missing", _mutate("payouts.2.bank_code", DELETE), "payouts.2.bank_code"),
    ("payout not an object", _mutate("payouts.1", "x"), "payouts.1"),
    (
        "duplicate payout external_id",
        _mutate("payouts.2.external_id", "M1-20261125"),
        "payouts.2.external_id",
    ),
    ("unknown field", _mutate("memo", "hello"), "memo"),
    ("unknown payout field", _mutate("payouts.0.memo", "hello"), "payouts.0.memo"),
]


@pytest.mark.parametrize("what, mutation, path", CASES, ids=[c[0] for c in CASES])
def test_each_rule_answers_validation_error_with_its_path(api, company_line, what, mutation, path):
    body = mutation(advance_body(THREE))
    response = api.post("/api/v1/advances", raw=json.dumps(body).encode())
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert path in error["details"], error
    assert all(isinstance(m, str) for m in error["details"][path])
    assert Advance.objects.count() == 0
    line = CreditLine.objects.get(pk=company_line[1].pk)
    assert (line.reserved, line.outstanding) == (0, 0)


def test_too_many_payouts(api):
    body = advance_body(("1.00",) * 1001)
    response = api.post("/api/v1/advances", body)
    assert response.status_code == 400
    assert "payouts" in error_of(response)["details"]


def test_thousand_payouts_and_emoji_are_fine(api):
    body = advance_body(("1.00",) * 1000)
    body["payouts"][0]["beneficiary_name"] = "上海示例贸易有限公司 🚀"
    response = api.post("/api/v1/advances", body)
    assert response.status_code == 201, response.content[:500]
    assert response.json()["amount"] == "1000.00"
    assert len(response.json()["payouts"]) == 1000


@pytest.mark.parametrize("amount, shown", [("12", "12.00"), ("0.01", "0.01"), ("1500.5", "1500.50")])
def test_amounts_are_rendered_with_two_decimals(api, amount, shown):
    response = api.post("/api/v1/advances", advance_body((amount,)))
    assert response.status_code == 201, response.content
    assert response.json()["amount"] == shown
    assert response.json()["payouts"][0]["amount"] == shown


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'"string"',
        b"\x00\x01",
        b'{"amount": NaN}',
        b"\xff\xfe",
        b'{"a": 1e99999}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"\\u0000": "\\u0000"}',
        b'{"x": "\\ud800"}',
    ],
)
def test_malformed_bodies_are_400(api, raw):
    response = api.post("/api/v1/advances", raw=raw)
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] == "validation_error"


def test_huge_body_is_400(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api.post("/api/v1/advances", raw=b'{"external_id": "' + b"x" * 20_000 + b'"}')
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"


def test_wrong_content_type_is_415(api):
    response = api.post("/api/v1/advances", headers={"Content-Type": "text/plain"}, raw=b"{}")
    assert response.status_code in (400, 415)
    assert error_of(response)["code"] in ("unsupported_media_type", "validation_error")


@pytest.mark.parametrize("idem", [None, "", "k" * 65, "ключ", "tab\there"])
def test_post_needs_a_valid_idempotency_key(api, idem):
    response = api.post("/api/v1/advances", advance_body(), idem=idem)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert "Idempotency-Key" in error["details"]
    assert Advance.objects.count() == 0


@pytest.mark.parametrize(
    "query, path",
    [
        ("status=nope", "status"),
        ("business_date=2026-13-01", "business_date"),
        ("page_size=201", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=abc", "page_size"),
        ("created_after=yesterday", "created_after"),
        ("cursor=%00%00", "cursor"),
        ("cursor=bm90IGpzb24", "cursor"),
        ("external_id=%00", "external_id"),
    ],
)
def test_list_filters_are_validated(api, query, path):
    response = api.get(f"/api/v1/advances?{query}")
    assert response.status_code == 400, response.content
    assert path in error_of(response)["details"]


@pytest.mark.parametrize("advance_id", ["nope", "adv_%00", "adv_01JD0000000000000000000000", "%F0%9F%9A%80"])
def test_unknown_advance_is_404(api, advance_id):
    response = api.get(f"/api/v1/advances/{advance_id}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_method_not_allowed_has_the_error_shape(api):
    response = api.call("DELETE", "/api/v1/credit-line")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize("date, status", [("2026-02-30", 400), ("20261125", 400), ("2026-11-26", 404)])
def test_statement_date_is_validated(api, date, status):
    response = api.get(f"/api/v1/statements/{date}")
    assert response.status_code == status
    assert error_of(response)["code"] == ("validation_error" if status == 400 else "not_found")


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_deeply_nested_json_is_400(api, raw):
    response = api.post("/api/v1/advances", raw=raw)
    assert response.status_code == 400, response.content[:300]
    assert error_of(response)["code"] == "validation_error"


@pytest.mark.parametrize(
    "query",
    [
        "created_after=0001-01-01T00:00:00",
        "created_after=0001-01-01T00:00:00%2B14:00",
        "created_before=9999-12-31T23:59:59",
        "created_before=9999-12-31T23:59:59-14:00",
        "business_date=0001-01-01",
        "business_date=9999-12-31",
        "external_id=%F0%9F%9A%80",
        "external_id=%FF",
    ],
)
def test_extreme_filters_never_5xx(api, query):
    response = api.get(f"/api/v1/advances?{query}")
    assert response.status_code in (200, 400), response.content


# Unicode categories Cc, Cf, Zl, Zp refused in every text input -------------------------------------------

INVISIBLE = {
    "NUL": "\x00",
    "DEL": "\x7f",
    "C1 control": "\x85",
    "right-to-left override U+202E": "\u202e",
    "left-to-right isolate U+2066": "\u2066",
    "zero-width space U+200B": "\u200b",
    "zero-width joiner U+200D": "\u200d",
    "byte order mark U+FEFF": "\ufeff",
    "soft hyphen U+00AD": "\u00ad",
    "line separator U+2028": "\u2028",
    "paragraph separator U+2029": "\u2029",
    "tag character U+E0041": "\U000e0041",
}
TEXT_FIELDS = [
    ("external_id", "SETTLE-1{}"),
    ("payouts.0.external_id", "M1{}x"),
    ("payouts.1.beneficiary_name", "Shanghai{}Example"),
    ("payouts.2.bank_code", "ICBC{}"),
    ("payouts.0.account_no", "62220202{}00112233"),
]


@pytest.mark.parametrize("name, char", list(INVISIBLE.items()), ids=list(INVISIBLE))
@pytest.mark.parametrize("path, template", TEXT_FIELDS, ids=[f[0] for f in TEXT_FIELDS])
def test_invisible_and_control_characters_are_refused_in_every_text_field(api, company_line, path, template,
                                                                         name, char):
    body = _mutate(path, template.format(char))(advance_body(THREE))
    response = api.post("/api/v1/advances", raw=json.dumps(body).encode())
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [path], error
    assert Advance.objects.count() == 0


@pytest.mark.parametrize("char", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_characters_are_refused_in_the_webhook_url_and_the_filters(api, char):
    put = api.put("/api/v1/webhook-endpoint", {"url": f"https://hooks.example.com/a{char}b"})
    assert put.status_code == 400 and list(error_of(put)["details"]) == ["url"], put.content
    from urllib.parse import quote

    listed = api.get(f"/api/v1/advances?external_id={quote('SETTLE' + char)}")
    assert listed.status_code == 400 and list(error_of(listed)["details"]) == ["external_id"], listed.content


def test_visible_unicode_stays_welcome(api):
    body = advance_body(THREE)
    body["payouts"][0]["beneficiary_name"] = "上海示例 Café ـ 👍🏽 (Ünïcödé)"
    body["external_id"] = "批次-2026-11-25"
    assert api.post("/api/v1/advances", body).status_code == 201


def test_the_refused_ranges_are_exactly_the_unicode_categories():
    import sys
    import unicodedata

    from funding.api.serializers import CONTROL, INVISIBLE_CATEGORIES

    expected = [i for i in range(sys.maxunicode + 1)
                if unicodedata.category(chr(i)) in INVISIBLE_CATEGORIES]
    found = [i for i in range(sys.maxunicode + 1) if 0xD800 > i or i > 0xDFFF if CONTROL.match(chr(i))]
    assert found == expected


@pytest.mark.parametrize("path", ["/api/v1/advances", "/api/v1/webhook-endpoint", "/api/v1/nowhere"])
def test_a_chunked_body_is_411_length_required_before_anything_else(api, path):
    from funding.api.models import NonceSeen

    response = api.post(path, advance_body(), headers={"Transfer-Encoding": "chunked"})
    assert response.status_code == 411
    assert error_of(response) == {
        "code": "length_required",
        "message": "Send the body with a Content-Length header; chunked transfer encoding is not accepted.",
        "details": {},
    }
    assert response["Content-Type"] == "application/json"
    assert Advance.objects.count() == 0 and NonceSeen.objects.count() == 0


def test_transfer_encoding_outside_the_api_is_left_to_django(client):
    assert client.get("/healthz", headers={"Transfer-Encoding": "chunked"}).status_code == 200
