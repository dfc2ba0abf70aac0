import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from funding.models import BankStatementImport, BankStatementLine
from funding.services.bank_statements import StatementFileError, bank_statement_import
from ledger.models import AccountKind, JournalTransaction
from ledger.selectors import trial_balance
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import balance, statement_csv

pytestmark = pytest.mark.django_db


def _import(data: bytes):
    return bank_statement_import(stream=io.BytesIO(data), filename="stmt.csv", imported_by="test")


def test_credits_and_debits_post_against_bank_clearing_once_per_reference(business_day):
    company, _ = company_with_line()
    data = statement_csv(
        (
            "2026-11-25",
            company.settlement_account_no,
            "C",
            "150045.00",
            "CLR1",
            "China UnionPay clearing",
            "T+1",
        ),
        ("2026-11-25", company.margin_account_no, "C", "50000.00", "MRG1", "", "margin deposit"),
        ("2026-11-25", company.settlement_account_no, "D", "45.00", "WD1", "", "withdrawal"),
    )
    first = _import(data)
    assert first.ok
    assert (first.statement.lines_imported, first.statement.credits_total, first.statement.debits_total) == (
        3,
        Decimal("200045.00"),
        Decimal("45.00"),
    )
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("150000.00")
    assert balance(company, AccountKind.MARGIN) == Decimal("50000.00")
    clearing = JournalTransaction.objects.get(reference="stmt:CLR1").entries.get(direction="D").account
    assert clearing.kind == AccountKind.BANK_CLEARING
    assert clearing.balance == Decimal("200000.00")

    again = _import(data)

    assert again.ok
    assert (again.statement.lines_imported, again.statement.lines_skipped) == (0, 3)
    assert BankStatementLine.objects.count() == 3
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("150000.00")
    assert trial_balance() == {"CNY": Decimal("0.00")}


def test_bad_lines_are_reported_by_line_number_and_the_good_ones_import(business_day):
    company, _ = company_with_line()
    acc = company.settlement_account_no
    data = statement_csv(
        ("2026-11-25", acc, "C", "100.00", "OK1", "", ""),  # line 2
        ("2026-11-25", "99999999", "C", "100.00", "UNKNOWN1", "", ""),  # line 3: unknown account
        ("2026-13-01", acc, "C", "100.00", "BADDATE", "", ""),  # line 4
        ("2026-11-25", acc, "X", "100.00", "BADDIR", "", ""),  # line 5
        ("2026-11-25", acc, "C", "1.005", "BADAMT", "", ""),  # line 6
        ("2026-11-25", acc, "C", "-5.00", "NEG", "", ""),  # line 7
        ("2026-11-25", acc, "C", "100.00", "", "", ""),  # line 8: no reference
        ("2026-11-25", acc, "D", "500.00", "OVERDRAW", "", ""),  # line 9: more than the balance
        ("2026-11-25", acc, "C", "200.00", "OK2", "", ""),  # line 10
    )
    result = _import(data)

    assert [r["line"] for r in result.rejections] == [3, 4, 5, 6, 7, 8, 9]
    assert "not a company settlement or margin account" in result.rejections[0]["error"]
    assert "overdraw" in result.rejections[-1]["error"]
    assert sorted(BankStatementLine.objects.values_list("reference", flat=True)) == ["OK1", "OK2"]
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("300.00")
    assert not JournalTransaction.objects.filter(reference="stmt:OVERDRAW").exists()
    statement = BankStatementImport.objects.get()
    assert (statement.lines_total, statement.lines_imported, statement.lines_rejected) == (9, 2, 7)


def test_same_reference_with_other_details_is_rejected(business_day):
    company, _ = company_with_line()
    _import(statement_csv(("2026-11-25", company.settlement_account_no, "C", "100.00", "R1", "", "")))
    result = _import(
        statement_csv(("2026-11-25", company.settlement_account_no, "C", "999.00", "R1", "", ""))
    )
    assert [r["line"] for r in result.rejections] == [2]
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("100.00")


def test_unreadable_file_is_refused_whole(business_day):
    with pytest.raises(StatementFileError):
        _import(b"date,amount\n2026-11-25,1.00\n")
    with pytest.raises(StatementFileError):
        _import(b"\xff\xfe\x00garbage")
    assert BankStatementImport.objects.count() == 0


def test_command_exits_non_zero_when_a_line_is_rejected(business_day, tmp_path, capsys):
    company, _ = company_with_line()
    good = tmp_path / "good.csv"
    good.write_bytes(statement_csv(("2026-11-25", company.settlement_account_no, "C", "10.00", "G1", "", "")))
    call_command("import_bank_statement", str(good))
    assert "1 imported" in capsys.readouterr().out
    call_command("import_bank_statement", str(good))
    assert "0 imported" in capsys.readouterr().out

    bad = tmp_path / "bad.csv"
    bad.write_bytes(statement_csv(("2026-11-25", "000", "C", "10.00", "B1", "", "")))
    with pytest.raises(CommandError):
        call_command("import_bank_statement", str(bad))
    assert "line 2:" in capsys.readouterr().err


def test_command_names_the_importing_staff_member_with_user(business_day, tmp_path, capsys):
    from django.contrib.auth.models import Group, User

    company, _ = company_with_line()
    good = tmp_path / "good.csv"
    good.write_bytes(statement_csv(("2026-11-25", company.settlement_account_no, "C", "10.00", "U1", "", "")))
    auditor = User.objects.create_user("auditor.qian", is_staff=True)
    auditor.groups.add(Group.objects.get(name="auditor"))
    with pytest.raises(CommandError, match="auditor.qian may not do this"):
        call_command("import_bank_statement", str(good), "--user", "auditor.qian")
    with pytest.raises(CommandError, match="unknown_user"):
        call_command("import_bank_statement", str(good), "--user", "nobody")
    assert not BankStatementImport.objects.exists() and not BankStatementLine.objects.exists()  # refused: nothing

    finance = User.objects.create_user("finance.sun", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    call_command("import_bank_statement", str(good), "--user", "finance.sun")
    assert "1 imported" in capsys.readouterr().out
    assert list(BankStatementImport.objects.values_list("imported_by", flat=True)) == ["finance.sun"]
    call_command("import_bank_statement", str(good))  # without --user: the command's name, as before
    assert list(BankStatementImport.objects.order_by("pk").values_list("imported_by", flat=True)) == [
        "finance.sun", "import_bank_statement"]


def test_command_prints_one_json_object_with_json(business_day, tmp_path, capsys):
    import json

    company, _ = company_with_line()
    good = tmp_path / "good.csv"
    good.write_bytes(statement_csv(("2026-11-25", company.settlement_account_no, "C", "10.00", "J1", "", ""),
                                   ("2026-11-25", "000", "C", "5.00", "J2", "", "")))
    with pytest.raises(CommandError):
        call_command("import_bank_statement", str(good), "--json")
    assert json.loads(capsys.readouterr().out) == {
        "file": "good.csv", "imported": 1, "credits_total": "10.00", "debits_total": "0.00",
        "already_imported": 0, "rejected": 1,
        "rejections": [{"line": 3, "error": "account 000 is not a company settlement or margin account"}],
        "notes": [],
    }
