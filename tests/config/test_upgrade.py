"""Upgrade: a database of the first release, with money in it, migrated to head, keeps working.

The first release's state is the latest migration of each project app at 7b1c370 ("Merge branch 'found'"),
the first commit on main where the engine worked end to end: foundation (credit lines with four eyes, the
ledger and its rules, advances with atomic holds, payout postings) and the payment-company API, merged.
A fresh database is migrated from zero to that state, as a database deployed then was, and filled through the
historical models of that state (never the live models, which describe head). Then it is migrated to head
(disbursement, nightly, advance_reserve() and its later versions, whatever comes next) over that data, and
the live services take a new advance and a refusal and cancel the old advance, with exact values.

The database is a throwaway one (the test database's name + "_upgrade"): Django's connection is pointed at it
for the test, as Django's own test setup points it at the test database, and back afterwards. The test
database is never migrated, so the tests after this one see it as it was; later migrations need not be
reversible for this test.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from funding.errors import InsufficientLimit
from funding.models import Advance, AdvanceStatus, Company, CreditLine
from funding.services.advances import PayoutInput, advance_cancel, advance_request
from ledger.models import Account, AccountKind, Entry, JournalTransaction
from ledger.selectors import account_totals_drift, trial_balance

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal

# The latest migration of each project app at 7b1c370 (`git ls-tree -r 7b1c370 -- '*/migrations/0*'`).
FIRST_RELEASE = [
    ("ledger", "0002_ledger_rules"),
    ("funding", "0002_audit_append_only"),
    ("settlement", "0001_initial"),
    ("console", "0002_roles"),
    ("api", "0002_cache_table"),
]

BUSINESS_DATE = date(2026, 11, 25)  # a Wednesday
DUE_DATE = date(2026, 11, 26)


def _migrate(targets):
    """Migrate the database to `targets`; return the historical apps of that state."""
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets, at_end=True).apps


def _first_release_data(old_apps) -> dict:
    """What the first release's services left behind: a company with its accounts, an approved active line,
    70,000.00 deposited in its settlement account (a posted journal), and an advance of 80,000.00 in `reserved`
    with two payouts, 50,000.00 of it from own funds (held) and 30,000.00 on the line (held)."""
    User = old_apps.get_model("auth", "User")
    Company = old_apps.get_model("funding", "Company")
    CreditLine = old_apps.get_model("funding", "CreditLine")
    ChangeRequest = old_apps.get_model("funding", "CreditLineChangeRequest")
    BusinessDay = old_apps.get_model("funding", "BusinessDay")
    CalendarYear = old_apps.get_model("funding", "CalendarYear")
    CalendarDay = old_apps.get_model("funding", "CalendarDay")
    Advance = old_apps.get_model("funding", "Advance")
    Payout = old_apps.get_model("settlement", "Payout")
    Account = old_apps.get_model("ledger", "Account")
    JournalTransaction = old_apps.get_model("ledger", "JournalTransaction")
    Entry = old_apps.get_model("ledger", "Entry")

    with transaction.atomic():
        CalendarYear.objects.create(year=2026, published=True, source="chinese-calendar")
        for day in range(23, 31):  # Mon 23 .. Mon 30 November 2026
            current = date(2026, 11, day)
            weekend = current.weekday() >= 5
            CalendarDay.objects.create(date=current, kind="weekend" if weekend else "workday",
                                       is_business_day=not weekend)
        BusinessDay.objects.create(current=BUSINESS_DATE)

        maker = User.objects.create(username="officer-v1", is_staff=True)
        checker = User.objects.create(username="approver-v1", is_staff=True)
        company = Company.objects.create(code="PAYCO-V1", legal_name="Payment Company of the first release",
                                         settlement_account_no="31000000000001", margin_account_no="32000000000001")
        accounts = {}
        for kind, type_ in [("advance_receivable", "asset"), ("fee_receivable", "asset"),
                            ("penalty_receivable", "asset"), ("settlement", "liability"), ("margin", "liability")]:
            accounts[kind] = Account.objects.create(
                code=f"PAYCO-V1:{kind}:CNY", name=f"{kind} PAYCO-V1", kind=kind, type=type_, owner="PAYCO-V1",
                currency="CNY", debits_must_not_exceed_credits=kind in ("settlement", "margin"),
                external_account_no="31000000000001" if kind == "settlement" else "")
        bank_clearing = Account.objects.create(code="bank:bank_clearing:CNY", name="Bank clearing",
                                               kind="bank_clearing", type="asset", owner="", currency="CNY")
        line = CreditLine.objects.create(
            company=company, status="active", currency="CNY", approved_limit=D("1000000.00"),
            effective_limit=D("1000000.00"), limit_ceiling=D("1000000.00"), daily_fee_rate=D("0.000300"),
            penalty_rate=D("0.000500"), valid_from=date(2026, 1, 1), valid_to=date(2027, 12, 31), created_by=maker)
        ChangeRequest.objects.create(credit_line=line, kind="approve_line", status="approved", maker=maker,
                                     checker=checker, maker_reason="new line",
                                     proposed={"approved_limit": "1000000.00"})

    with transaction.atomic():  # the ledger's rules of that release check the journal at COMMIT
        deposit = JournalTransaction.objects.create(kind="settlement.deposit", business_date=BUSINESS_DATE,
                                                    reference="v1:deposit:PAYCO-V1:1")
        Entry.objects.bulk_create([
            Entry(transaction=deposit, account=bank_clearing, direction="D", amount=D("70000.00"), currency="CNY"),
            Entry(transaction=deposit, account=accounts["settlement"], direction="C", amount=D("70000.00"),
                  currency="CNY"),
        ])

    with transaction.atomic():
        advance = Advance.objects.create(
            public_id="adv_v1_0001", company=company, credit_line=line, external_id="V1-1", status="reserved",
            currency="CNY", amount=D("80000.00"), own_funds_amount=D("50000.00"), advanced_amount=D("30000.00"),
            daily_fee_rate=D("0.000300"), business_date=BUSINESS_DATE, due_date=DUE_DATE)
        for sequence, (amount, own) in enumerate([("60000.00", "50000.00"), ("20000.00", "0.00")], 1):
            Payout.objects.create(
                public_id=f"po_v1_000{sequence}", advance=advance, sequence=sequence, external_id=f"V1-M{sequence}",
                beneficiary_name="Shanghai Example Trading Co.", account_no="6222020200112233445", bank_code="ICBC",
                amount=D(amount), own_funds_amount=D(own), advanced_amount=D(amount) - D(own), status="pending")
        Account.objects.filter(pk=accounts["settlement"].pk).update(debits_pending=D("50000.00"))
        CreditLine.objects.filter(pk=line.pk).update(reserved=D("30000.00"))

    return {"company_id": company.pk, "line_id": line.pk, "advance_id": advance.pk, "deposit_id": deposit.pk}


def _settlement() -> Account:
    return Account.objects.get(kind=AccountKind.SETTLEMENT, owner="PAYCO-V1", currency="CNY")


def _payouts(advance: Advance) -> list[tuple]:
    return [(p.public_id, p.sequence, p.amount, p.own_funds_amount, p.advanced_amount, p.status)
            for p in advance.payouts.order_by("sequence")]


@pytest.fixture
def first_release_database():
    """A database of its own at the first release's state; the connection is back on the test database after."""
    test_database = connection.settings_dict["NAME"]
    name = f"{test_database}_upgrade"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    connection.settings_dict["NAME"] = name
    ContentType.objects.clear_cache()
    try:
        yield _migrate(FIRST_RELEASE)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = test_database
        ContentType.objects.clear_cache()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_first_release_data_migrated_to_head_takes_a_new_advance(first_release_database, settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False  # the dispatch worker is not what this test is about
    assert connection.settings_dict["NAME"].endswith("_upgrade")
    old = _first_release_data(first_release_database)

    call_command("migrate", interactive=False, verbosity=0)  # the upgrade, as a deployment runs it
    connection.close()  # the application starts afresh on the upgraded database

    company = Company.objects.get(pk=old["company_id"])
    old_advance = Advance.objects.get(pk=old["advance_id"])
    assert (old_advance.public_id, old_advance.status, old_advance.amount, old_advance.own_funds_amount,
            old_advance.advanced_amount, old_advance.business_date, old_advance.due_date) == (
        "adv_v1_0001", AdvanceStatus.RESERVED, D("80000.00"), D("50000.00"), D("30000.00"), BUSINESS_DATE, DUE_DATE)
    assert _payouts(old_advance) == [
        ("po_v1_0001", 1, D("60000.00"), D("50000.00"), D("10000.00"), "pending"),
        ("po_v1_0002", 2, D("20000.00"), D("0.00"), D("20000.00"), "pending"),
    ]

    advance = advance_request(company=company, external_id="V2-1", amount=D("40000.00"), payouts=[
        PayoutInput(external_id="V2-M1", beneficiary_name="Hangzhou Example Ltd.", account_no="6222020200998877665",
                    bank_code="CCB", amount=D("25000.00")),
        PayoutInput(external_id="V2-M2", beneficiary_name="Suzhou Example Ltd.", account_no="6222020200554433221",
                    bank_code="ABC", amount=D("15000.00")),
    ])

    # Own funds first: 70,000.00 deposited, 50,000.00 held by the old advance, so 20,000.00 left for this one.
    advance = Advance.objects.get(pk=advance.pk)
    assert (advance.status, advance.amount, advance.own_funds_amount, advance.advanced_amount, advance.daily_fee_rate,
            advance.business_date, advance.due_date, advance.credit_line_id) == (
        AdvanceStatus.RESERVED, D("40000.00"), D("20000.00"), D("20000.00"), D("0.000300"), BUSINESS_DATE, DUE_DATE,
        old["line_id"])
    assert [row[1:] for row in _payouts(advance)] == [
        (1, D("25000.00"), D("20000.00"), D("5000.00"), "pending"),
        (2, D("15000.00"), D("0.00"), D("15000.00"), "pending"),
    ]
    line = CreditLine.objects.get(pk=old["line_id"])
    assert (line.status, line.reserved, line.outstanding, line.effective_limit) == (
        "active", D("50000.00"), D("0.00"), D("1000000.00"))
    settlement = _settlement()
    assert (settlement.credits_posted, settlement.debits_posted, settlement.debits_pending) == (
        D("70000.00"), D("0.00"), D("70000.00"))

    # A refusal answers with what v2 of advance_reserve() returns (the line's part asked), and changes nothing.
    with pytest.raises(InsufficientLimit) as refused:
        advance_request(company=company, external_id="V2-2", amount=D("950000.01"), payouts=[
            PayoutInput(external_id="V2-M3", beneficiary_name="Hangzhou Example Ltd.",
                        account_no="6222020200998877665", bank_code="CCB", amount=D("950000.01"))])
    assert refused.value.details == {"available": "950000.00", "requested": "950000.01"}
    assert not Advance.objects.filter(external_id="V2-2").exists()
    assert CreditLine.objects.get(pk=old["line_id"]).reserved == D("50000.00")
    assert _settlement().debits_pending == D("70000.00")

    # The old advance is still operable by the live code: cancelling it releases exactly its holds.
    advance_cancel(company=company, public_id="adv_v1_0001", actor_label="upgrade-test")
    old_advance.refresh_from_db()
    assert old_advance.status == AdvanceStatus.CANCELLED
    assert [row[5] for row in _payouts(old_advance)] == ["cancelled", "cancelled"]
    assert CreditLine.objects.get(pk=old["line_id"]).reserved == D("20000.00")
    assert _settlement().debits_pending == D("20000.00")

    # The old journal is intact, and the ledger still adds up.
    deposit = JournalTransaction.objects.get(pk=old["deposit_id"])
    assert (deposit.kind, deposit.reference, deposit.business_date) == (
        "settlement.deposit", "v1:deposit:PAYCO-V1:1", BUSINESS_DATE)
    assert sorted((e.account.code, e.direction, e.amount) for e in Entry.objects.filter(transaction=deposit)) == [
        ("PAYCO-V1:settlement:CNY", "C", D("70000.00")),
        ("bank:bank_clearing:CNY", "D", D("70000.00")),
    ]
    assert JournalTransaction.objects.count() == 1
    assert account_totals_drift() == []
    assert trial_balance() == {"CNY": D("0.00")}
