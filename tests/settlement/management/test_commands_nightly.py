from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from funding.models import AuditEvent, BusinessDay
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import credit_settlement, disbursed_advance

pytestmark = pytest.mark.django_db


def test_collect_and_close_print_one_line_summaries(business_day, capsys):
    company, _ = company_with_line()
    disbursed_advance(company, "1000.00")
    call_command("close_business_day")
    assert capsys.readouterr().out.strip().startswith("close_business_day 2026-11-25 #1 succeeded")
    credit_settlement(company, "600.00")

    call_command("collect_repayments")

    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "collect_repayments 2026-11-26 #1 succeeded: 1 repayments of 600.00 "
        "(0 advances repaid in full, 1 paid)"
    ]
    audit = AuditEvent.objects.get(action="repayment.collected")
    assert (audit.actor_label, audit.after["amount"]) == ("job:collect_repayments", str(Decimal("600.00")))

    call_command("close_business_day", "--date", "2026-11-25")
    assert capsys.readouterr().out.startswith(
        "already closed, nothing changed: close_business_day 2026-11-25"
    )


def test_close_exits_non_zero_with_a_clear_message(business_day):
    BusinessDay.objects.update(current=date(2026, 12, 31))
    with pytest.raises(CommandError, match="calendar for 2027 is not published"):
        call_command("close_business_day")
    with pytest.raises(CommandError, match="not 2026-12-30"):
        call_command("close_business_day", "--date", "2026-12-30")


def test_collect_and_close_print_one_json_object_with_json(business_day, capsys):
    import json

    company, _ = company_with_line()
    disbursed_advance(company, "1000.00")
    call_command("close_business_day", "--json")
    closed = json.loads(capsys.readouterr().out)
    assert (closed["job"], closed["business_date"], closed["sequence"], closed["status"], closed["changed"]) == (
        "close_business_day", "2026-11-25", 1, "succeeded", True)
    assert closed["next_business_date"] == "2026-11-26"
    credit_settlement(company, "600.00")

    call_command("collect_repayments", "--json")

    collected = json.loads(capsys.readouterr().out)
    assert (collected["job"], collected["business_date"], collected["changed"]) == (
        "collect_repayments", "2026-11-26", True)
    assert collected["counts"]["repayments"] == 1
    assert collected["amounts"]["repaid"] == "600.00"
    call_command("close_business_day", "--date", "2026-11-25", "--json")
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_reconciliation_report_refuses_a_bad_date_cleanly(business_day, capsys):
    with pytest.raises(CommandError, match="--date '2026-13-01' is not a date"):
        call_command("reconciliation_report", "--date", "2026-13-01")
    assert capsys.readouterr().out == ""


def test_reconciliation_report_exits_zero_on_a_clean_day(business_day, capsys):
    import json

    call_command("reconciliation_report", "--date", "2026-11-25")
    assert json.loads(capsys.readouterr().out) == {
        "date": "2026-11-25", "channels": {}, "exceptions": [], "open_exceptions": 0, "closed_exceptions": []}
