"""advance_create_fast() must never accept what AdvanceCreateSerializer refuses, nor answer differently."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding.api.serializers import AdvanceCreateSerializer, advance_create_fast


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _payout(n: int, amount: str = "100.00") -> dict:
    return {"external_id": f"P-{n}", "beneficiary_name": "Shanghai Example Trading Co.",
            "account_no": "6222020200112233445", "bank_code": "ICBC", "amount": amount}


def _body(**changes) -> dict:
    body = {"external_id": "B-1", "currency": "CNY", "amount": "300.00",
            "payouts": [_payout(1), _payout(2), _payout(3)]}
    body.update(changes)
    return body


def test_a_plain_body_takes_the_fast_path_with_the_serializer_s_result():
    body = _body(use_own_funds=False)
    serializer = AdvanceCreateSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    fast = advance_create_fast(body)
    assert fast == _plain(serializer.validated_data)
    assert fast["amount"] == Decimal("300.00") and fast["use_own_funds"] is False
    assert advance_create_fast(_body())["use_own_funds"] is True  # the serializer's default


@pytest.mark.parametrize(
    "body",
    [
        _body(amount="300"),  # valid for both: "300" -> 300.00
        _body(external_id="   "),  # whitespace only: the serializer accepts, the service refuses
        _body(amount="0300.00"),
        _body(extra=1),
        _body(payouts=[_payout(1, "150.00"), _payout(1, "150.00")]),
        _body(payouts=[{**_payout(1, "300.00"), "account_no": "12345678\n"}]),
        _body(payouts=[{**_payout(1, "300.00"), "bank_code": "ICBC\n"}]),
        _body(external_id="B-1\u202e"),
        _body(external_id="\u200bB-1"),
        _body(payouts=[{**_payout(1, "300.00"), "beneficiary_name": "Shanghai\u2028Co"}]),
        _body(payouts=[{**_payout(1, "300.00"), "external_id": "P\ufeff1"}]),
        _body(currency="cny"),
        _body(use_own_funds=1),
        _body(amount="300.001"),
        _body(amount="300.01"),  # payouts add up to 300.00
    ],
)
def test_edge_bodies_agree_with_the_serializer_or_fall_back(body):
    serializer = AdvanceCreateSerializer(data=body)
    fast = advance_create_fast(body)
    if fast is not None:
        assert serializer.is_valid(), serializer.errors
        assert fast == _plain(serializer.validated_data)


def mostly(valid, tricky):
    """Nineteen draws in twenty valid: whole bodies must often be valid (about a fifth are), or comparing
    the two paths would only ever compare refusals."""
    return st.integers(0, 19).flatmap(lambda n: tricky if n == 0 else valid)


TRICKY_TEXTS = st.one_of(
    st.sampled_from(["", " ", " x ", "x\n", "x\x00", "\ud800", "\u00e9\u4e2d", "x" * 64, "x" * 65, "y" * 100,
                     "y" * 101, "x\u202ey", "\u200b", "x\u200d", "\ufeffx", "x\u2028", "x\u2029", "x\u00ad",
                     "x\x85", "\U000e0041", "x\u2066"]),
    st.text(max_size=70),
    # Text drawn from exactly the refused categories mixed with ordinary letters.
    st.text(st.characters(categories=("Cc", "Cf", "Zl", "Zp", "Lo", "Ll")), min_size=1, max_size=10),
    st.integers(),
    st.none(),
)
TRICKY_AMOUNTS = st.one_of(
    st.sampled_from(["0", "0.00", "01.00", "1.005", "-1.00", " 1.00", "9999999999999.99", "10000000000000.00",
                     "1e3", "NaN", "100", "100.0"]),
    st.floats(allow_nan=False),
    st.none(),
)
VALID_AMOUNTS = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=Decimal("0.01"),
                            max_value=1000).map(lambda d: f"{d:.2f}")
ACCOUNTS = mostly(st.sampled_from(["6222020200112233445", "12345678", "1" * 32]),
                  st.one_of(st.sampled_from(["1234567", "1" * 33, "12345678\n", "1234abcd", "1234\u200b5678"]),
                            st.text(max_size=40)))
BANKS = mostly(st.sampled_from(["ICBC", "icbc_1-2", "A" * 16]),
               st.one_of(st.sampled_from(["", "A" * 17, "IC BC", "ICBC\n", "ICBC\u200b", "\u202eICBC"]),
                         st.text(max_size=20)))


@st.composite
def payout_dicts(draw, index: int):
    payout = {
        "external_id": draw(mostly(st.sampled_from([f"P-{index}", f"P-{index}-x", "P-0"]), TRICKY_TEXTS)),
        "beneficiary_name": draw(mostly(st.sampled_from(["Shanghai Example", "\u4e0a\u6d77\u516c\u53f8"]),
                                        TRICKY_TEXTS)),
        "account_no": draw(ACCOUNTS),
        "bank_code": draw(BANKS),
        "amount": draw(mostly(VALID_AMOUNTS, TRICKY_AMOUNTS)),
    }
    if draw(st.integers(0, 19)) == 0:
        payout.pop(draw(st.sampled_from(sorted(payout))))
    if draw(st.integers(0, 19)) == 0:
        payout["unknown"] = 1
    return payout


@st.composite
def bodies(draw):
    count = draw(st.integers(0, 4))
    payouts = [draw(payout_dicts(i)) for i in range(count)]
    total = Decimal("0.00")
    for payout in payouts:
        try:
            total += Decimal(payout["amount"])
        except (KeyError, TypeError, ArithmeticError, ValueError):
            pass
    body = {
        "external_id": draw(mostly(st.sampled_from(["B-1", "batch 2026-11-25"]), TRICKY_TEXTS)),
        "currency": draw(mostly(st.just("CNY"), st.sampled_from(["USD", "cny", "", None, 1]))),
        "amount": draw(mostly(st.just(f"{total:.2f}"), st.one_of(VALID_AMOUNTS, TRICKY_AMOUNTS))),
        "payouts": payouts,
    }
    if draw(st.booleans()):
        body["use_own_funds"] = draw(mostly(st.booleans(), st.sampled_from([1, 0, "true", None])))
    if draw(st.integers(0, 19)) == 0:
        body.pop(draw(st.sampled_from(sorted(body))))
    if draw(st.integers(0, 19)) == 0:
        body["unknown"] = "x"
    return body if draw(st.integers(0, 19)) else draw(st.sampled_from([[], "x", None, 1]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_fast_path_never_accepts_what_the_serializer_refuses(body):
    serializer = AdvanceCreateSerializer(data=body)
    valid = serializer.is_valid()
    fast = advance_create_fast(body)
    if fast is not None:
        assert valid, (body, serializer.errors)
        assert fast == _plain(serializer.validated_data)


@pytest.mark.parametrize("char", ["\x00", "\x85", "\u00ad", "\u200b", "\u200d", "\u202e", "\u2028", "\u2029",
                                  "\u2066", "\ufeff", "\U000e0041"])
@pytest.mark.parametrize("field", ["external_id", "payouts.0.external_id", "payouts.0.beneficiary_name"])
def test_neither_path_accepts_an_invisible_character(char, field):
    body = _body(amount="100.00", payouts=[_payout(1)])
    if field == "external_id":
        body["external_id"] = f"B{char}1"
    else:
        body["payouts"][0][field.split(".")[-1]] = f"X{char}Y"
    serializer = AdvanceCreateSerializer(data=body)
    assert not serializer.is_valid()
    assert advance_create_fast(body) is None
