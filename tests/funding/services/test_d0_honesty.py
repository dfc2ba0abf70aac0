"""D0 means today (contract 1.7): a payout no channel can pay on the current business date is refused at
request time (outside_channel_hours, nothing held); the fee counts days from each payout's value date."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from funding.errors import OutsideChannelHours
from funding.models import Advance, Payout
from funding.representations import advance_representation
from funding.services.advances import advance_finish_disbursement, advance_request
from funding.services.events import ADVANCE_DATA_SQL
from ledger.models import Account, AccountKind
from settlement.models import Channel
from settlement.services.channels import channel_seed_simulated
from tests.factories import company_with_line, payout_inputs
from tests.money_helpers import advance_start_disbursing, payout_resolve, payout_send, settlement_deposit

pytestmark = pytest.mark.django_db

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
WED, THU = date(2026, 11, 25), date(2026, 11, 26)


@pytest.fixture
def at(monkeypatch):
    """The request's clock (the edge the engine reads its time from)."""

    def set_clock(hour: int, minute: int = 0, day: date = WED) -> None:
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_clock


def _payouts(*spec: tuple[str, str]):
    """(amount, bank code) pairs."""
    inputs = payout_inputs(*[amount for amount, _bank in spec])
    return [type(p)(p.external_id, p.beneficiary_name, p.account_no, bank, p.amount)
            for p, (_amount, bank) in zip(inputs, spec, strict=True)]


def _request(company, external_id, *spec):
    payouts = _payouts(*spec)
    return advance_request(company=company, external_id=external_id, payouts=payouts,
                           amount=sum((p.amount for p in payouts), D(0)))


def test_after_the_large_value_cut_off_a_large_payout_is_refused_and_nothing_is_held(business_day, at):
    channel_seed_simulated()  # HVPS 08:30-17:15 any amount; BEPS, IBPS up to 50,000.00; INTERNAL: bank SELF
    company, line = company_with_line(limit="1000000.00")
    settlement_deposit(company=company, amount="1000.00", business_date=WED)
    at(17, 15)

    with pytest.raises(OutsideChannelHours) as refused:
        _request(company, "LATE-1", ("80000.00", "ICBC"), ("30000.00", "ICBC"), ("60000.00", "SELF"),
                 ("50000.01", "CCB"))
    assert (refused.value.code, refused.value.http_status) == ("outside_channel_hours", 422)
    assert refused.value.details == {
        "payouts.0.amount": ["No channel can pay 80000.00 to ICBC on the business date 2026-11-25: above every "
                             "open channel's limit or after their cut-off."],
        "payouts.3.amount": ["No channel can pay 50000.01 to CCB on the business date 2026-11-25: above every "
                             "open channel's limit or after their cut-off."],
    }
    line.refresh_from_db()
    assert (line.reserved, line.advanced_today) == (D("0.00"), D("0.00"))
    assert Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code).debits_pending == D("0.00")
    assert not Advance.objects.exists() and not Payout.objects.exists()

    # What IBPS (7x24, up to 50,000.00) and INTERNAL (bank SELF) can pay is accepted after the cut-off.
    _request(company, "LATE-2", ("50000.00", "ICBC"), ("60000.00", "SELF"))
    at(17, 14)  # one minute before HVPS's cut-off
    _request(company, "EARLY-1", ("80000.00", "ICBC"))


def test_before_the_business_dates_window_opens_it_counts_as_today(business_day, at):
    channel_seed_simulated()
    company, _ = company_with_line()
    at(23, 30, day=date(2026, 11, 24))  # the night before: Wednesday's HVPS window is still ahead
    _request(company, "NIGHT-1", ("80000.00", "ICBC"))
    at(6, 0)
    _request(company, "DAWN-1", ("80000.00", "ICBC"))


def test_a_disabled_channel_or_an_unreachable_bank_pays_nothing(business_day, at):
    channel_seed_simulated()
    company, _ = company_with_line()
    at(10, 0)
    Channel.objects.filter(code="HVPS").update(enabled=False)
    with pytest.raises(OutsideChannelHours) as refused:
        _request(company, "D-1", ("80000.00", "ICBC"))
    assert list(refused.value.details) == ["payouts.0.amount"]
    Channel.objects.filter(code="HVPS").update(enabled=True, bank_codes="BOC, CCB")
    with pytest.raises(OutsideChannelHours):
        _request(company, "D-2", ("80000.00", "ICBC"))
    _request(company, "D-3", ("80000.00", "CCB"))


def test_a_channel_open_across_midnight_pays_until_its_cut_off_the_next_morning(business_day, at):
    Channel.objects.create(code="NIGHT", name="Night", adapter="x.Adapter", service_start="20:00",
                           service_end="02:00")
    company, _ = company_with_line()
    at(1, 59, day=THU)
    _request(company, "N-1", ("1000.00", "ICBC"))
    at(2, 0, day=THU)
    with pytest.raises(OutsideChannelHours):
        _request(company, "N-2", ("1000.00", "ICBC"))


def test_with_no_channel_configured_there_is_nothing_to_judge_by(business_day, at):
    company, _ = company_with_line()
    at(23, 59)
    _request(company, "NONE-1", ("80000.00", "ICBC"))


def test_the_fee_counts_days_from_each_payouts_value_date(business_day):
    company, _ = company_with_line(daily_fee_rate="0.000300")
    advance = advance_request(company=company, external_id="VD-1", amount=D("200000.00"),
                              payouts=payout_inputs("100000.00", "100000.00"))
    assert (advance.business_date, advance.due_date) == (WED, THU)
    advance_start_disbursing(advance=advance)
    first, second = advance.payouts.order_by("sequence")
    payout_send(payout=first, business_date=WED)
    payout_resolve(payout=first, outcome="succeeded", business_date=WED)
    # The second is rejected on Wednesday and retried, and its funds leave on Thursday (the due date).
    payout_send(payout=second, business_date=WED)
    payout_resolve(payout=second, outcome="retry", business_date=WED)
    payout_send(payout=second, business_date=THU)
    payout_resolve(payout=second, outcome="succeeded", business_date=THU)

    advance = advance_finish_disbursement(advance_id=advance.pk, business_date=THU)

    # 100,000.00 x 0.0003 x 1 day (Wednesday to Thursday) + 100,000.00 x 0.0003 x 0 days
    assert advance.fee == D("30.00")
    assert advance.advanced_disbursed == D("200000.00")
    body = advance_representation(advance)
    assert [p["value_date"] for p in body["payouts"]] == ["2026-11-25", "2026-11-26"]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {ADVANCE_DATA_SQL} FROM funding_advance v WHERE v.id = %s", [advance.pk])
        rendered = cursor.fetchone()[0]
    assert [p["value_date"] for p in rendered["payouts"]] == ["2026-11-25", "2026-11-26"]
    assert rendered["fee"] == "30.00"


def test_a_payout_paid_on_its_advances_date_is_charged_as_before(business_day):
    company, _ = company_with_line(daily_fee_rate="0.000300")
    advance = advance_request(company=company, external_id="VD-2", amount=D("150000.00"),
                              payouts=payout_inputs("100000.00", "50000.00"))
    advance_start_disbursing(advance=advance)
    for payout in advance.payouts.order_by("sequence"):
        payout_send(payout=payout, business_date=WED)
        payout_resolve(payout=payout, outcome="succeeded", business_date=WED)
    assert advance_finish_disbursement(advance_id=advance.pk, business_date=WED).fee == D("45.00")
