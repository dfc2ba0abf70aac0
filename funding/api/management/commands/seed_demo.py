"""Demo data for `make run`: staff per role, three companies with approved lines, funds, keys, secrets.

Safe to run again: existing users, companies, lines, calendar and fundings are kept; passwords, API keys
(the oldest is rotated out beyond two) and webhook secrets are issued afresh each run so they can be printed.
"""

import json
import secrets
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from funding.api.services import api_key_issue, webhook_secret_rotate
from funding.console.roles import roles_sync
from funding.models import BusinessDay, Company, CreditLine, CreditLineStatus
from funding.services.calendar import (
    business_date_initialize,
    calendar_seed_year,
    is_business_day,
    next_business_day,
)
from funding.services.credit_lines import change_request_approve, company_create, credit_line_create
from ledger.models import AccountKind, JournalTransaction
from ledger.services import account_get_or_create, credit, debit, ledger_post
from settlement.services.channels import channel_seed_simulated

STAFF_ROLES = ["credit_officer", "credit_approver", "operations", "finance", "auditor"]

COMPANIES = [
    # code, legal name, settlement account, margin account, approved limit, own funds at the bank
    (
        "PAYCO-A",
        "Shanghai Demo Payments Co., Ltd.",
        "31001234567890",
        "32001234567890",
        "5000000.00",
        "200000.00",
    ),
    (
        "PAYCO-B",
        "Hangzhou Demo Pay Technology Co., Ltd.",
        "31001234567891",
        "32001234567891",
        "2000000.00",
        "0.00",
    ),
    (
        "PAYCO-C",
        "Shenzhen Demo Clearing Services Co., Ltd.",
        "31001234567892",
        "32001234567892",
        "800000.00",
        "50000.00",
    ),
]


def _today_shanghai() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


class Command(BaseCommand):
    help = "Create or refresh the demo data and print what is needed to call the API (--json: JSON only)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
        parser.add_argument(
            "--json-file",
            help="also write the JSON object to this file (mode 600), for scripts run from another shell",
        )

    def handle(self, *args, **options):
        if not settings.LOCAL_RUN:
            # Demo staff get known passwords and demo companies get live API keys: never on a real system.
            raise CommandError(
                f"seed_demo refused: DJANGO_ENV={settings.DJANGO_ENV}; demo data is for local runs (DJANGO_ENV=local)"
            )
        today = _today_shanghai()
        for year in (today.year, today.year + 1):
            calendar_seed_year(year=year)
        if not BusinessDay.objects.exists():
            current = today if is_business_day(today) else next_business_day(today)
            business_date_initialize(current=current)
        business_date = BusinessDay.objects.get().current
        # Advances are disbursed through a channel: without one every payout would wait for staff.
        channels = channel_seed_simulated()
        # The groups normally exist after `migrate` (post_migrate); sync again in case roles changed since.
        roles_sync()

        staff = []
        users = {}
        for role in STAFF_ROLES:
            password = f"demo-{role.replace('_', '-')}-{secrets.token_urlsafe(9)}"
            user, _ = User.objects.get_or_create(username=f"demo_{role}", defaults={"is_staff": True})
            user.is_staff = True
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            users[role] = user
            staff.append({"username": user.username, "password": password, "role": role})

        companies = []
        for code, name, settlement_no, margin_no, limit, own_funds in COMPANIES:
            with transaction.atomic():
                company = Company.objects.filter(code=code).first() or company_create(
                    code=code,
                    legal_name=name,
                    settlement_account_no=settlement_no,
                    margin_account_no=margin_no,
                )
                line = CreditLine.objects.filter(
                    company=company,
                    status__in=[
                        CreditLineStatus.ACTIVE,
                        CreditLineStatus.FROZEN,
                        CreditLineStatus.SUSPENDED,
                        CreditLineStatus.PENDING_APPROVAL,
                    ],
                ).first()
                if line is None:
                    line = credit_line_create(
                        company=company,
                        terms={
                            "approved_limit": limit,
                            "daily_fee_rate": "0.000300",
                            "penalty_rate": "0.000500",
                            "valid_from": date(today.year, 1, 1).isoformat(),
                            "valid_to": date(today.year + 1, 12, 31).isoformat(),
                        },
                        actor=users["credit_officer"],
                    )
                if line.status == CreditLineStatus.PENDING_APPROVAL:
                    change_request_approve(
                        request=line.change_requests.get(status="pending"),
                        checker=users["credit_approver"],
                        reason="demo",
                    )
                    line.refresh_from_db()
                _fund(company, Decimal(own_funds), business_date)
            issued = api_key_issue(
                company=company, actor_label="seed_demo", revoke_oldest_if_full=True, label="demo"
            )
            webhook_secret = webhook_secret_rotate(company=company, actor_label="seed_demo")
            companies.append(
                {
                    "code": company.code,
                    "api_key": issued.key_id,
                    "api_secret": issued.secret,
                    "webhook_secret": webhook_secret,
                    "settlement_account": company.settlement_account_no,
                    "approved_limit": f"{line.approved_limit:.2f}",
                }
            )

        result = {
            "base_url": settings.API_BASE_URL,
            "business_date": business_date.isoformat(),
            "companies": companies,
            "staff": staff,
        }
        if options["json_file"]:
            path = Path(options["json_file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(result, indent=2))
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        admin_url = f"{settings.API_BASE_URL.rstrip('/')}/{settings.ADMIN_URL}"
        self.stdout.write(
            f"Demo data ready; business date {business_date.isoformat()}; API {result['base_url']}"
        )
        self.stdout.write(f"  staff console: {admin_url} (dashboard {admin_url}console/)")
        self.stdout.write(f"  channels: {', '.join(sorted(c.code for c in channels))}")
        for c in companies:
            self.stdout.write(
                f"  {c['code']}: api_key={c['api_key']} api_secret={c['api_secret']} "
                f"webhook_secret={c['webhook_secret']} limit={c['approved_limit']}"
            )
        for s in staff:
            self.stdout.write(f"  staff {s['username']} ({s['role']}): password {s['password']}")


def _fund(company: Company, amount: Decimal, business_date: date) -> None:
    """Once per company (stable reference): money arrives on the settlement account from outside."""
    reference = f"DEMO-FUNDING-{company.code}"
    if amount <= 0 or JournalTransaction.objects.filter(reference=reference).exists():
        return
    clearing = account_get_or_create(kind=AccountKind.BANK_CLEARING)
    settlement = account_get_or_create(
        kind=AccountKind.SETTLEMENT, owner=company.code, external_account_no=company.settlement_account_no
    )
    ledger_post(
        kind="demo.funding",
        reference=reference,
        business_date=business_date,
        legs=[debit(clearing, amount), credit(settlement, amount)],
        description="demo opening balance",
    )
