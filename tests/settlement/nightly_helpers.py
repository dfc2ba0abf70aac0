"""Builders for the nightly-job tests: disbursed advances through the real services, statement credits."""

import io
import itertools
from decimal import Decimal

from django.db import transaction

from funding.models import Advance, Company
from funding.services.advances import advance_finish_disbursement, advance_request
from funding.services.bank_statements import bank_statement_import
from funding.services.calendar import business_date_current
from ledger.models import Account, AccountKind, Entry
from settlement.models import Channel
from settlement.services.postings import payout_post_confirmed, payout_post_funds_out
from tests.factories import payout_inputs

_seq = itertools.count(1)


def disbursed_advance(
    company: Company, *amounts: str, use_own_funds: bool = False, external_id: str = ""
) -> Advance:
    """An advance whose payouts all succeeded: principal drawn, fee posted, status disbursed."""
    total = sum((Decimal(a) for a in amounts), Decimal(0))
    advance = advance_request(
        company=company,
        external_id=external_id or f"ADV{next(_seq)}",
        amount=total,
        payouts=payout_inputs(*amounts),
        use_own_funds=use_own_funds,
    )
    channel, _ = Channel.objects.get_or_create(
        code="TESTCH", defaults={"name": "Test", "adapter": "tests.fake"}
    )
    business_date = business_date_current()
    with transaction.atomic():
        advance = Advance.objects.select_for_update().get(pk=advance.pk)
        advance.start_disbursing()
        advance.save(update_fields=["status"])
        for payout in advance.payouts.order_by("sequence"):
            payout.start_attempt()
            payout_post_funds_out(
                payout=payout, channel=channel, serial=f"SER{payout.pk}", business_date=business_date
            )
            payout.mark_succeeded()
            # The success draws the line's hold (contract 1.7: reserved until the outcome is known).
            payout_post_confirmed(payout=payout, channel=channel, serial=f"SER{payout.pk}", fee=Decimal("0"),
                                  business_date=business_date)
            payout.save()
    return advance_finish_disbursement(advance_id=advance.pk, business_date=business_date)


def statement_csv(*rows: tuple) -> bytes:
    lines = ["value_date,account_no,direction,amount,reference,counterparty,memo"]
    lines += [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def credit_settlement(company: Company, amount: str, *, value_date: str | None = None, reference: str = ""):
    value_date = value_date or business_date_current().isoformat()
    reference = reference or f"CLR{next(_seq):08d}"
    data = statement_csv(
        (value_date, company.settlement_account_no, "C", amount, reference, "UnionPay", "T+1")
    )
    result = bank_statement_import(stream=io.BytesIO(data), filename="test.csv", imported_by="test")
    assert result.ok, result.rejections
    return result


def balance(company: Company, kind: str) -> Decimal:
    return Account.objects.get(kind=kind, owner=company.code).balance


def available(company: Company) -> Decimal:
    return Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code).available


def ledger_fingerprint() -> list[tuple]:
    """Every entry by journal reference and account code: equal fingerprints mean equal ledgers."""
    return sorted(
        Entry.objects.values_list(
            "transaction__reference", "transaction__kind", "account__code", "direction", "amount"
        )
    )
