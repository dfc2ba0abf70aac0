"""Builders for test data, going through the services like a real user would."""

import itertools
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import User

from funding.models import Company, CreditLine
from funding.services.advances import PayoutInput
from funding.services.calendar import business_date_initialize, calendar_seed_year
from funding.services.credit_lines import change_request_approve, company_create, credit_line_create

_seq = itertools.count(1)

BUSINESS_DATE = date(2026, 11, 25)  # a Wednesday; the next business day is Thursday 2026-11-26


def calendar_and_business_date(current: date = BUSINESS_DATE) -> None:
    calendar_seed_year(year=2026)
    business_date_initialize(current=current)


def staff_user(username: str | None = None) -> User:
    return User.objects.create_user(username or f"staff{next(_seq)}", is_staff=True)


def company_with_line(
    *,
    code: str | None = None,
    limit: str = "1000000.00",
    daily_fee_rate: str = "0.000300",
    penalty_rate: str = "0.000500",
    maker: User | None = None,
    checker: User | None = None,
    **terms,
) -> tuple[Company, CreditLine]:
    n = next(_seq)
    company = company_create(
        code=code or f"PAYCO-{n}",
        legal_name=f"Payment Company {n}",
        settlement_account_no=f"3100{n:010d}",
        margin_account_no=f"3200{n:010d}",
    )
    maker = maker or staff_user()
    checker = checker or staff_user()
    line = credit_line_create(
        company=company,
        terms={
            "approved_limit": limit,
            "daily_fee_rate": daily_fee_rate,
            "penalty_rate": penalty_rate,
            "valid_from": "2026-01-01",
            "valid_to": "2027-12-31",
            **terms,
        },
        actor=maker,
    )
    change_request_approve(request=line.change_requests.get(), checker=checker)
    line.refresh_from_db()
    return company, line


def payout_inputs(*amounts: str) -> list[PayoutInput]:
    return [
        PayoutInput(
            external_id=f"M{next(_seq)}",
            beneficiary_name="Shanghai Example Trading Co.",
            account_no="6222020200112233445",
            bank_code="ICBC",
            amount=Decimal(amount),
        )
        for amount in amounts
    ]
