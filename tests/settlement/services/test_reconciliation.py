"""Statement reconciliation: classification, resolving unknown attempts, CSV import, daily report."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from funding.errors import ValidationFailed
from ledger.models import AccountKind
from ledger.selectors import account_balance
from settlement.adapters.base import StatementRow
from settlement.models import PayoutAttempt, ReconciliationItem, SimulatedChannelTransfer
from settlement.services.disbursement import advance_dispatch
from settlement.services.reconciliation import (
    reconciliation_report,
    statement_fetch_and_import,
    statement_import,
    statement_rows_from_csv,
)
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)


def test_classification_and_resolution_of_unknown(advance_factory, channels):
    advance = advance_factory("100.00", "200.00", "300.00")
    advance_dispatch(advance_id=advance.pk)
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0)
    unknown_advance = advance_factory("400.00")
    advance_dispatch(advance_id=unknown_advance.pk)
    a1, a2, a3, a4 = PayoutAttempt.objects.order_by("payout__advance_id", "payout__sequence")
    assert [a.status for a in (a1, a2, a3, a4)] == ["succeeded", "succeeded", "succeeded", "unknown"]
    today = timezone.localdate()
    rows = [
        StatementRow(serial=a1.serial, amount=Decimal("100.00"), status="succeeded"),
        StatementRow(serial=a2.serial, amount=Decimal("200.01"), status="succeeded"),  # amount mismatch
        # a3 is missing in the statement
        StatementRow(serial=a4.serial, amount=Decimal("400.00"), status="succeeded"),  # resolves the unknown
        StatementRow(serial="po_stranger-1", amount=Decimal("5.00"), status="succeeded"),  # not ours
    ]
    statement = statement_import(channel=channels["BEPS"], statement_date=today, rows=rows)
    got = dict(ReconciliationItem.objects.filter(statement=statement).values_list("serial", "classification"))
    assert got == {
        a1.serial: "matched",
        a2.serial: "amount_mismatch",
        a3.serial: "missing_in_statement",
        a4.serial: "matched",
        "po_stranger-1": "missing_on_our_side",
    }
    a4.refresh_from_db()
    assert (a4.status, a4.resolved_by) == ("succeeded", "statement")
    assert ReconciliationItem.objects.get(serial=a4.serial).resolved_attempt is True
    unknown_advance.refresh_from_db()
    assert unknown_advance.status == "disbursed"
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    # Importing again changes nothing and doubles nothing.
    statement_import(channel=channels["BEPS"], statement_date=today, rows=rows)
    assert ReconciliationItem.objects.count() == 5
    report = reconciliation_report(statement_date=today)
    assert report["channels"]["BEPS"] == {
        "amount_mismatch": 1,
        "matched": 2,
        "missing_in_statement": 1,
        "missing_on_our_side": 1,
    }
    assert [e["classification"] for e in report["exceptions"]] == sorted(
        ["amount_mismatch", "missing_in_statement", "missing_on_our_side"],
        key=lambda c: {
            "amount_mismatch": a2.serial,
            "missing_in_statement": a3.serial,
            "missing_on_our_side": "po_stranger-1",
        }[c],
    )


def test_statement_failure_resolves_unknown_and_allows_failover(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    rows = [
        StatementRow(serial=attempt.serial, amount=Decimal("100.00"), status="failed", code="BE-ACCT-FROZEN")
    ]
    statement_import(channel=channels["BEPS"], statement_date=timezone.localdate(), rows=rows)
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code) == ("failed", "account_frozen")
    assert attempt.payout.status == "pending"  # explicit, retryable: may go to another channel now
    advance_dispatch(advance_id=advance.pk)
    second = PayoutAttempt.objects.get(number=2)
    assert second.channel.code != "BEPS" and second.status == "succeeded"


def test_adapter_statement_import_from_the_simulated_bank_side(advance_factory, channels):
    channel_configure(channels["BEPS"], late_success_rate=1, late_seconds=0)
    advance = advance_factory("100.00", "200.00")
    advance_dispatch(advance_id=advance.pk)
    assert set(PayoutAttempt.objects.values_list("status", flat=True)) == {"processing"}
    statement = statement_fetch_and_import(channel=channels["BEPS"], statement_date=timezone.localdate())
    assert statement.row_count == 2
    assert set(ReconciliationItem.objects.values_list("classification", flat=True)) == {"matched"}
    assert set(PayoutAttempt.objects.values_list("status", flat=True)) == {"succeeded"}
    assert SimulatedChannelTransfer.objects.filter(status="succeeded").count() == 2


def test_csv_parsing_and_rejection():
    rows = statement_rows_from_csv(
        text="serial,amount,status,code\npo_a-1,100.00,succeeded,\npo_b-1,5.5,failed,E1\n"
    )
    assert rows == [
        StatementRow("po_a-1", Decimal("100.00"), "succeeded", ""),
        StatementRow("po_b-1", Decimal("5.50"), "failed", "E1"),
    ]
    with pytest.raises(ValidationFailed) as exc:
        statement_rows_from_csv(text="serial,amount,status\npo_a-1,abc,succeeded\n,1.001,paid\n")
    assert set(exc.value.details) == {"line 2", "line 3"}
    with pytest.raises(ValidationFailed):
        statement_rows_from_csv(text="serial,amt\n")
    assert timedelta(0) == timedelta(0)


def test_a_statement_that_is_not_csv_is_refused_with_the_line_not_a_trace():
    import csv as csv_module

    from funding.errors import ValidationFailed

    huge = "x" * (csv_module.field_size_limit() + 1)
    with pytest.raises(ValidationFailed) as refused:
        statement_rows_from_csv(text=f"serial,amount,status\n\"{huge}\",1.00,succeeded\n")
    assert list(refused.value.details) == ["line 2"]
    assert refused.value.details["line 2"][0].startswith("not CSV: field larger than field limit")
