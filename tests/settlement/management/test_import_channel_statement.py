"""`import_channel_statement CHANNEL DATE FILE` (contract 2.2), end to end through the real dispatch."""

import io
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from funding.models import AdvanceStatus, PayoutStatus
from ledger.models import AccountKind
from ledger.selectors import account_balance, account_totals_drift, trial_balance
from settlement.models import ChannelStatement, PayoutAttempt, PayoutReturn, ReconciliationItem
from settlement.services.disbursement import advance_dispatch
from tests.settlement.conftest import channel_configure
from tests.settlement.nightly_helpers import ledger_fingerprint

pytestmark = pytest.mark.django_db(transaction=True)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_channel_statement", *args, stdout=out)
    return out.getvalue().strip()


def _items() -> list[tuple]:
    return sorted(
        ReconciliationItem.objects.values_list(
            "serial", "classification", "resolved_attempt", "booked_return", "updated_at"
        )
    )


def test_import_resolves_unknown_books_return_records_exceptions_and_is_idempotent(
    advance_factory, channels, tmp_path
):
    paid = advance_factory("100.00", "200.00", "300.00")
    advance_dispatch(advance_id=paid.pk)
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=0)
    pending = advance_factory("400.00")
    advance_dispatch(advance_id=pending.pk)
    a1, a2, a3, a4 = PayoutAttempt.objects.order_by("payout__advance_id", "payout__sequence")
    assert [a.channel.code for a in (a1, a2, a3, a4)] == ["BEPS"] * 4
    assert [a.status for a in (a1, a2, a3, a4)] == ["succeeded", "succeeded", "succeeded", "unknown"]
    paid.refresh_from_db()
    assert (paid.status, paid.fee) == (AdvanceStatus.DISBURSED, Decimal("0.18"))  # 600 x 0.0003
    today = timezone.localdate().isoformat()
    path = _write(tmp_path, "beps.csv", "\n".join([
        "serial,amount,status,code",
        f"{a1.serial},100.00,succeeded,",
        f"{a2.serial},200.00,returned,R01",   # books the return of a succeeded payout
        f"{a3.serial},301.00,returned,R01",   # amount disagrees: an exception, nothing booked
        f"{a4.serial},400.00,succeeded,",     # resolves the unknown attempt
        "po_stranger-1,5.00,succeeded,",      # matches nothing
    ]) + "\n")

    summary = _run("BEPS", today, path)

    assert summary == f"BEPS {today}: 5 lines, 3 matched, 1 resolved, 1 returned (200.00), 2 exceptions"
    a4.refresh_from_db()
    assert (a4.status, a4.resolved_by) == ("succeeded", "statement")
    pending.refresh_from_db()
    assert pending.status == AdvanceStatus.DISBURSED
    payout2 = a2.payout
    payout2.refresh_from_db()
    assert payout2.status == PayoutStatus.RETURNED
    assert a3.payout.__class__.objects.get(pk=a3.payout_id).status == PayoutStatus.SUCCEEDED
    booked = PayoutReturn.objects.get()
    assert (booked.payout_id, booked.source, booked.amount) == (payout2.pk, "statement", Decimal("200.00"))
    assert booked.statement == ChannelStatement.objects.get(channel=channels["BEPS"])
    paid.refresh_from_db()
    assert (paid.returned_amount, paid.disbursed_amount, paid.fee) == (
        Decimal("200.00"), Decimal("400.00"), Decimal("0.12"))  # 400 x 0.0003
    got = {serial: (cls, resolved, ret) for serial, cls, resolved, ret, _ in _items()}
    assert got == {
        a1.serial: ("matched", False, False),
        a2.serial: ("matched", False, True),
        a3.serial: ("amount_mismatch", False, False),
        a4.serial: ("matched", True, False),
        "po_stranger-1": ("missing_on_our_side", False, False),
    }
    assert account_balance(kind=AccountKind.PAYOUTS_IN_TRANSIT, owner="BEPS") == Decimal("0.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []

    # The same file again changes nothing.
    ledger, items = ledger_fingerprint(), _items()
    again = json.loads(_run("BEPS", today, path, "--json"))
    assert again == {"channel": "BEPS", "date": today, "lines": 5, "matched": 3, "resolved": 0, "returned": 0,
                     "returned_amount": "0.00", "exceptions": 2}
    assert ledger_fingerprint() == ledger
    assert _items() == items
    assert PayoutReturn.objects.count() == 1
    assert paid.company.webhook_events.filter(type="payout.returned").count() == 1


def test_malformed_line_or_another_channels_serial_refuses_the_whole_file(advance_factory, channels, tmp_path):
    advance = advance_factory("100.00", "200.00")
    advance_dispatch(advance_id=advance.pk)
    a1, a2 = PayoutAttempt.objects.order_by("payout__sequence")
    today = timezone.localdate().isoformat()
    before = ledger_fingerprint()
    bad = _write(tmp_path, "bad.csv", f"serial,amount,status\n{a2.serial},200.00,returned\n{a1.serial},1e3,paid\n")
    with pytest.raises(CommandError, match="Nothing was imported") as refused:
        _run("BEPS", today, bad)
    assert str(refused.value).startswith("validation_error: ")
    assert "line 3: amount must be a positive amount with at most 2 decimals; status must be" in str(refused.value)
    other = _write(tmp_path, "other.csv", f"serial,amount,status\n{a1.serial},100.00,succeeded\n")
    with pytest.raises(CommandError, match=f"line 2: serial {a1.serial} was sent through BEPS, not HVPS"):
        _run("HVPS", today, other)
    with pytest.raises(CommandError, match="Unknown channel"):
        _run("NOPE", today, other)
    with pytest.raises(CommandError, match="not a date"):
        _run("BEPS", "2026-13-01", other)
    assert ledger_fingerprint() == before
    assert not ReconciliationItem.objects.exists()
    assert not ChannelStatement.objects.exists()
    assert PayoutAttempt.objects.get(pk=a2.pk).payout.status == PayoutStatus.SUCCEEDED

    # From the shell: a non-zero exit and the bad line named on stderr.
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    done = subprocess.run(
        [sys.executable, "manage.py", "import_channel_statement", "BEPS", today, bad],
        capture_output=True, text=True, env=env, cwd=settings.BASE_DIR, timeout=120,
    )
    assert done.returncode != 0
    assert "line 3:" in done.stderr and "Nothing was imported" in done.stderr
    assert not ChannelStatement.objects.exists()


def _test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
