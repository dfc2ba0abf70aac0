import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from funding.console import reports
from funding.selectors import RECEIVABLE_KINDS
from ledger.models import AccountKind, JournalTransaction
from ledger.services import account_get_or_create, credit, debit, ledger_post, ledger_reverse
from settlement.models import AttemptStatus, Channel, PayoutAttempt
from settlement.services.postings import payout_post_confirmed
from tests.factories import company_with_line

MON, TUE, WED = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)


def post(kind, ref, day, dr, cr, amount):
    return ledger_post(
        kind=kind,
        reference=ref,
        business_date=day,
        legs=[debit(dr, Decimal(amount)), credit(cr, Decimal(amount))],
    )


def seed_ledger():
    """ACME: Mon out 1,000.00 + fee 0.30; Tue out 500.00, 200.00 returned, repaid 600.00 + fee 0.30;
    Wed penalty 0.20 and a fee of 1.00 reversed the same day. ZETA has accounts and no entries."""
    company_with_line(code="ACME")
    company_with_line(code="ZETA")
    acc = {
        kind: account_get_or_create(kind=kind, owner="ACME")
        for kind in (
            AccountKind.ADVANCE_RECEIVABLE,
            AccountKind.FEE_RECEIVABLE,
            AccountKind.PENALTY_RECEIVABLE,
            AccountKind.SETTLEMENT,
        )
    }
    transit = account_get_or_create(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="HVPS")
    bank = account_get_or_create(kind=AccountKind.BANK_CLEARING)
    fee_income = account_get_or_create(kind=AccountKind.FEE_INCOME)
    penalty_income = account_get_or_create(kind=AccountKind.PENALTY_INCOME)
    post("payout.funds_out", "p1:out", MON, acc[AccountKind.ADVANCE_RECEIVABLE], transit, "1000.00")
    post("advance.fee", "a1:fee", MON, acc[AccountKind.FEE_RECEIVABLE], fee_income, "0.30")
    post("bank.credit", "b1", TUE, bank, acc[AccountKind.SETTLEMENT], "10000.00")
    post("payout.funds_out", "p2:out", TUE, acc[AccountKind.ADVANCE_RECEIVABLE], transit, "500.00")
    post("payout.returned", "p2:returned", TUE, transit, acc[AccountKind.ADVANCE_RECEIVABLE], "200.00")
    post(
        "repayment",
        "r1:principal",
        TUE,
        acc[AccountKind.SETTLEMENT],
        acc[AccountKind.ADVANCE_RECEIVABLE],
        "600.00",
    )
    post("repayment", "r1:fee", TUE, acc[AccountKind.SETTLEMENT], acc[AccountKind.FEE_RECEIVABLE], "0.30")
    post(
        "penalty.accrual", "a1:penalty:wed", WED, acc[AccountKind.PENALTY_RECEIVABLE], penalty_income, "0.20"
    )
    fee = post("advance.fee", "a2:fee", WED, acc[AccountKind.FEE_RECEIVABLE], fee_income, "1.00")
    ledger_reverse(journal=fee, reference="a2:fee:reversal", business_date=WED)


def zero_row(day):
    return {
        "business_date": day,
        "company": "ZETA",
        "legal_name": "Payment Company",
        **{
            k: Decimal("0.00")
            for k in (
                "opening_outstanding",
                "advanced",
                "fees",
                "penalties",
                "repaid",
                "returned",
                "closing_outstanding",
                "overdue",
                "overdue_1_3",
                "overdue_4_7",
                "overdue_8_30",
                "overdue_31_plus",
            )
        },
    }


@pytest.mark.django_db
def test_daily_position_from_the_ledger(business_day):
    seed_ledger()
    tue = reports.daily_position(business_date=TUE)
    acme = tue.rows[0]
    assert acme == {
        "business_date": TUE,
        "company": "ACME",
        "legal_name": acme["legal_name"],
        "opening_outstanding": Decimal("1000.30"),
        "advanced": Decimal("300.00"),
        "fees": Decimal("0.00"),
        "penalties": Decimal("0.00"),
        "repaid": Decimal("600.30"),
        "returned": Decimal("0.00"),
        "closing_outstanding": Decimal("700.00"),
        # first in, first out: Tuesday's 300.00 is not due yet; 400.00 of Monday's was due Tuesday
        "overdue": Decimal("400.00"),
        "overdue_1_3": Decimal("400.00"),
        "overdue_4_7": Decimal("0.00"),
        "overdue_8_30": Decimal("0.00"),
        "overdue_31_plus": Decimal("0.00"),
    }
    assert tue.rows[1]["company"] == "ZETA"
    assert {k: v for k, v in tue.rows[1].items() if k != "legal_name"} == {
        k: v for k, v in zero_row(TUE).items() if k != "legal_name"
    }
    wed = reports.daily_position(business_date=WED).rows[0]
    assert (
        wed["opening_outstanding"],
        wed["fees"],
        wed["penalties"],
        wed["repaid"],
        wed["closing_outstanding"],
        wed["overdue"],
    ) == (
        Decimal("700.00"),
        Decimal("0.00"),
        Decimal("0.20"),
        Decimal("0.00"),
        Decimal("700.20"),
        Decimal("700.00"),
    )
    receivables = sum(
        (account_get_or_create(kind=k, owner="ACME").balance for k in RECEIVABLE_KINDS), Decimal(0)
    )
    assert wed["closing_outstanding"] == receivables == Decimal("700.20")


@pytest.mark.django_db
def test_overdue_aging_buckets_first_in_first_out():
    zero = dict.fromkeys(reports.CATEGORIES, Decimal("0.00"))
    history = {
        date(2026, 10, 1): {**zero, "advanced": Decimal("50.00")},
        date(2026, 11, 10): {**zero, "advanced": Decimal("100.00")},
        date(2026, 11, 20): {**zero, "advanced": Decimal("30.00")},
        date(2026, 11, 25): {**zero, "advanced": Decimal("40.00")},
    }
    aging = reports.overdue_aging(history=history, as_of=date(2026, 11, 25), closing=Decimal("200.00"))
    # no stored calendar here: due = the next calendar day
    assert aging == {
        "overdue": Decimal("160.00"),
        "overdue_1_3": Decimal("0.00"),
        "overdue_4_7": Decimal("30.00"),
        "overdue_8_30": Decimal("100.00"),
        "overdue_31_plus": Decimal("30.00"),
    }


@pytest.mark.django_db
def test_daily_position_csv_exact(business_day, client, user_in_role):
    seed_ledger()
    client.force_login(user_in_role("finance"))
    response = client.get(
        reverse("console:report_daily_position"), {"business_date": "2026-11-24", "format": "csv"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="daily_position_2026-11-24.csv"'
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == (
        "business_date,company,legal_name,opening_outstanding,advanced,fees,penalties,repaid,"
        "closing_outstanding,overdue,overdue_1_3,overdue_4_7,overdue_8_30,overdue_31_plus,returned"
    )
    assert lines[1].startswith("2026-11-24,ACME,Payment Company ")
    assert lines[1].split(",")[3:] == [
        "1000.30",
        "300.00",
        "0.00",
        "0.00",
        "600.30",
        "700.00",
        "400.00",
        "400.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
    ]
    assert lines[2].split(",")[:2] == ["2026-11-24", "ZETA"]
    assert lines[3] == "2026-11-24,TOTAL,,1000.30,300.00,0.00,0.00,600.30,700.00,400.00,400.00,0.00,0.00,0.00,0.00"
    assert len(lines) == 4


@pytest.mark.django_db
def test_trial_balance_and_account_balances_as_of_a_date(business_day, client, user_in_role):
    seed_ledger()
    client.force_login(user_in_role("auditor"))
    url = reverse("console:report_trial_balance")
    csv_text = client.get(url, {"as_of": "2026-11-24", "format": "csv"}).content.decode("utf-8-sig")
    assert csv_text.splitlines() == [
        "account,name,type,currency,debit,credit",
        "ACME:advance_receivable:CNY,Advance receivable ACME,asset,CNY,700.00,0.00",
        "ACME:fee_receivable:CNY,Fee receivable ACME,asset,CNY,0.00,0.00",
        "ACME:settlement:CNY,Settlement account ACME,liability,CNY,0.00,9399.70",
        "HVPS:payouts_in_transit:CNY,Payouts in transit HVPS,liability,CNY,0.00,1300.00",
        "bank:bank_clearing:CNY,Bank clearing (funds received from outside),asset,CNY,10000.00,0.00",
        "bank:fee_income:CNY,Fee income,income,CNY,0.00,0.30",
        "TOTAL,,,,10700.00,10700.00",
    ]
    balances = reports.account_balances(as_of=MON)
    assert [(r["account"], r["debits"], r["credits"], r["balance"]) for r in balances.rows] == [
        ("ACME:advance_receivable:CNY", Decimal("1000.00"), Decimal("0.00"), Decimal("1000.00")),
        ("ACME:fee_receivable:CNY", Decimal("0.30"), Decimal("0.00"), Decimal("0.30")),
        ("HVPS:payouts_in_transit:CNY", Decimal("0.00"), Decimal("1000.00"), Decimal("1000.00")),
        ("bank:fee_income:CNY", Decimal("0.00"), Decimal("0.30"), Decimal("0.30")),
    ]
    page = client.get(reverse("console:report_account_balances"), {"as_of": "2026-11-24"})
    assert page.status_code == 200 and "9,399.70" in page.content.decode()
    assert JournalTransaction.objects.count() == 10


@pytest.mark.django_db
def test_bad_report_date_is_a_400_with_a_message(business_day, client, user_in_role):
    client.force_login(user_in_role("finance"))
    response = client.get(reverse("console:report_trial_balance"), {"as_of": "25/11/2026"})
    assert response.status_code == 400
    assert "as_of must be a date like 2026-11-25." in response.content.decode()


@pytest.mark.django_db
def test_channel_report_volume_success_rate_and_cost(business_day, client, user_in_role):
    from funding.services.advances import advance_request
    from tests.factories import payout_inputs

    company, _line = company_with_line(code="ACME")
    hvps = Channel.objects.create(code="HVPS", name="HVPS", adapter="x.Adapter")
    beps = Channel.objects.create(code="BEPS", name="BEPS", adapter="x.Adapter")
    Channel.objects.create(code="IBPS", name="IBPS", adapter="x.Adapter")
    advance = advance_request(
        company=company,
        external_id="A1",
        amount=Decimal("3000.00"),
        payouts=payout_inputs("1000.00", "2000.00"),
    )
    first, second = advance.payouts.order_by("sequence")
    PayoutAttempt.objects.create(
        payout=first, number=1, serial="S1", channel=beps, amount=first.amount, status=AttemptStatus.FAILED
    )
    PayoutAttempt.objects.create(
        payout=first,
        number=2,
        serial="S2",
        channel=hvps,
        amount=first.amount,
        status=AttemptStatus.SUCCEEDED,
        fee=Decimal("5.00"),
    )
    PayoutAttempt.objects.create(
        payout=second, number=1, serial="S3", channel=hvps, amount=second.amount, status=AttemptStatus.UNKNOWN
    )
    payout_post_confirmed(payout=first, channel=hvps, serial="S2", fee=Decimal("5.00"), business_date=WED)
    client.force_login(user_in_role("finance"))
    today = timezone.localdate().isoformat()
    response = client.get(
        reverse("console:report_channels"), {"start": "2026-11-20", "end": today, "format": "csv"}
    )
    assert response.content.decode("utf-8-sig").splitlines() == [
        "channel,attempts,succeeded,failed,undecided,success_rate,amount,amount_succeeded,cost",
        "BEPS,1,0,1,0,0.00,1000.00,0.00,0.00",
        "HVPS,2,1,0,1,100.00,3000.00,1000.00,5.00",
        "IBPS,0,0,0,0,,0.00,0.00,0.00",
    ]


@pytest.mark.django_db
def test_report_csv_quotes_formula_text_and_keeps_negative_amounts(business_day, client, user_in_role):
    from funding.models import Company

    seed_ledger()
    Company.objects.filter(code="ZETA").update(legal_name='=HYPERLINK("http://evil.example","Click")')
    client.force_login(user_in_role("finance"))
    response = client.get(
        reverse("console:report_daily_position"), {"business_date": "2026-11-24", "format": "csv"}
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[2][:3] == ["2026-11-24", "ZETA", '\'=HYPERLINK("http://evil.example","Click")']
    # The 200.00 returned on Tuesday counts against "advanced": a number, never quoted.
    report = reports.daily_position(business_date=TUE)
    assert report.rows[0]["advanced"] == Decimal("300.00")
    assert reports.report_csv(reports.Report("t", [("v", "v")], [{"v": Decimal("-200.00")}])) == "v\r\n-200.00\r\n"
