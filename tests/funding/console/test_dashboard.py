from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from funding.console import selectors
from funding.models import Advance, ChangeRequestKind, Payout, PayoutStatus
from funding.services.advances import advance_request
from funding.services.credit_lines import change_request_propose
from funding.services.events import event_emit
from settlement.models import AttemptStatus, Channel, PayoutAttempt
from settlement.services.postings import payout_post_confirmed, payout_post_funds_out
from tests.factories import BUSINESS_DATE, company_with_line, payout_inputs

SHANGHAI = ZoneInfo("Asia/Shanghai")


def seed():
    """ACME: limit 1,000,000.00; an advance of 250,000.00 split 100,000 (funds out) + 150,000 (held);
    then the advance is disbursed and overdue with fee 30.00; one pending limit increase; one channel."""
    company, line = company_with_line(code="ACME", limit="1000000.00")
    company_with_line(code="BETA", limit="500000.00")
    advance = advance_request(
        company=company,
        external_id="A1",
        amount=Decimal("250000.00"),
        payouts=payout_inputs("100000.00", "150000.00"),
    )
    hvps = Channel.objects.create(code="HVPS", name="HVPS", adapter="x.Adapter")
    first, second = advance.payouts.order_by("sequence")
    payout_post_funds_out(payout=first, channel=hvps, serial="S1", business_date=BUSINESS_DATE)
    # Its success draws the line's part (contract 1.7: reserved until the outcome is known).
    payout_post_confirmed(payout=first, channel=hvps, serial="S1", fee=Decimal("0"), business_date=BUSINESS_DATE)
    PayoutAttempt.objects.create(
        payout=first, number=1, serial="S1", channel=hvps, amount=first.amount, status=AttemptStatus.SUCCEEDED
    )
    PayoutAttempt.objects.create(
        payout=second, number=1, serial="S2", channel=hvps, amount=second.amount, status=AttemptStatus.FAILED
    )
    PayoutAttempt.objects.create(
        payout=second, number=2, serial="S3", channel=hvps, amount=second.amount, status=AttemptStatus.UNKNOWN
    )
    second.start_attempt()
    second.mark_unknown()
    second.save(update_fields=["status"])
    # The nightly job will do this; here the advance is walked through its FSM to seed an overdue amount.
    advance = Advance.objects.get(pk=advance.pk)
    advance.start_disbursing()
    advance.mark_disbursed()
    advance.mark_overdue()
    advance.advanced_disbursed = Decimal("100000.00")
    advance.disbursed_amount = Decimal("100000.00")
    advance.fee = Decimal("30.00")
    advance.save(update_fields=["status", "advanced_disbursed", "disbursed_amount", "fee"])
    return company, line


@pytest.mark.django_db
def test_company_exposures_exact(business_day):
    seed()
    acme, beta = selectors.company_exposures()
    assert (acme.code, acme.line_status) == ("ACME", "active")
    assert acme.approved_limit == acme.effective_limit == Decimal("1000000.00")
    assert acme.reserved == Decimal("150000.00")
    assert acme.outstanding == Decimal("100000.00")
    assert acme.available == Decimal("750000.00")
    assert acme.utilisation == Decimal("25.00")
    assert acme.overdue == Decimal("100030.00")
    assert (beta.code, beta.reserved, beta.outstanding, beta.available, beta.utilisation, beta.overdue) == (
        "BETA",
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("500000.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )


@pytest.mark.django_db
def test_business_date_and_cutoff_countdown(business_day):
    now = datetime(2026, 11, 25, 20, 30, tzinfo=SHANGHAI)
    info = selectors.business_date_info(now=now)
    assert info.current == BUSINESS_DATE
    assert info.cutoff_at == datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI)
    assert (info.seconds_to_cutoff, info.countdown, info.cutoff_passed) == (9000, "2:30", False)
    with override_settings(EOD_CUTOFF_TIME="20:00"):
        late = selectors.business_date_info(now=now)
    assert (late.seconds_to_cutoff, late.countdown, late.cutoff_passed) == (-1800, "0:30", True)


@pytest.mark.django_db
def test_payouts_channels_and_daily_chart_data(business_day):
    seed()
    by_status = {row["status"]: (row["count"], row["amount"]) for row in selectors.payouts_by_status()}
    assert by_status[PayoutStatus.PENDING] == (1, Decimal("100000.00"))
    assert by_status[PayoutStatus.UNKNOWN] == (1, Decimal("150000.00"))
    assert by_status[PayoutStatus.SUCCEEDED] == (0, Decimal("0.00"))
    attention = selectors.payouts_needing_attention()
    assert [row["payout"].status for row in attention] == [PayoutStatus.UNKNOWN]
    assert selectors.channel_success_rates() == [
        {
            "channel": "HVPS",
            "attempts": 3,
            "succeeded": 1,
            "failed": 1,
            "undecided": 1,
            "success_rate": Decimal("50.00"),
        }
    ]
    daily = selectors.daily_disbursed_and_repaid(until=BUSINESS_DATE)
    assert len(daily) == 30
    assert daily[-1] == {"date": BUSINESS_DATE, "disbursed": Decimal("100000.00"), "repaid": Decimal("0.00")}
    assert all(row["disbursed"] == row["repaid"] == Decimal("0.00") for row in daily[:-1])
    assert Payout.objects.count() == 2


@pytest.mark.django_db
def test_dashboard_renders_exact_numbers_for_staff(business_day, client, user_in_role):
    company, line = seed()
    maker = user_in_role("credit_officer", username="maker")
    change_request_propose(
        credit_line=line,
        kind=ChangeRequestKind.CHANGE_TERMS,
        proposed={"approved_limit": "1500000.00"},
        maker=maker,
        reason="more flow",
    )
    event_emit(
        company=company,
        type="advance.created",
        resource_type="advance",
        resource_id="adv_x",
        version=1,
        data={},
    )
    client.force_login(user_in_role("credit_approver", username="checker"))
    response = client.get(reverse("console:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    row = html.split('data-company="ACME"')[1].split("</tr>")[0]
    for figure in ("1,000,000.00", "150,000.00", "100,000.00", "750,000.00", "25.00%", "100,030.00"):
        assert figure in row
    assert "2026-11-25" in html
    pending = html.split('id="pending-approvals"')[1].split('id="payouts"')[0]
    assert "Pending approvals (1)" in pending and "maker" in pending and "1,500,000.00" in pending
    assert "change_request.proposed" in html  # latest audit events: the checker may view them
    webhooks = html.split('id="webhooks"')[1].split('id="job-runs"')[0]
    # two credit_line.limit_changed events from the approvals of the seed, and this one
    assert "Pending: 3" in webhooks and "advance.created" in webhooks
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "HVPS" in html and "50.00%" in html


@pytest.mark.django_db
def test_operations_sees_no_audit_events_on_the_dashboard(business_day, client, user_in_role):
    client.force_login(user_in_role("operations"))
    response = client.get(reverse("console:dashboard"))
    assert response.status_code == 200
    assert 'id="audit"' not in response.content.decode()


@pytest.mark.django_db
def test_non_staff_is_sent_to_login_and_staff_without_role_gets_403(business_day, client, user_in_role):
    url = reverse("console:dashboard")
    assert url == f"/{settings.ADMIN_URL}console/"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and reverse("admin:login") in anonymous["Location"]
    client.force_login(user_in_role("credit_approver", username="outsider", is_staff=False))
    assert client.get(url).status_code == 302
    client.force_login(user_in_role(None, username="roleless"))
    assert client.get(url).status_code == 403
    assert client.get(reverse("console:report_trial_balance")).status_code == 403


@pytest.mark.django_db
def test_admin_index_links_to_the_console(business_day, client, user_in_role):
    client.force_login(user_in_role("finance"))
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("console:dashboard") in html and reverse("console:reports") in html
    client.force_login(user_in_role(None, username="roleless"))
    assert reverse("console:dashboard") not in client.get(reverse("admin:index")).content.decode()


def test_dashboard_lists_job_runs_and_open_reconciliation_exceptions(business_day, client, user_in_role):
    from datetime import date

    from settlement.adapters.base import StatementRow
    from settlement.models import JobName, JobRun, JobRunStatus, ReconciliationException
    from settlement.services.channels import channel_seed_simulated
    from settlement.services.reconciliation import statement_import
    from settlement.services.reconciliation_queue import reconciliation_exception_resolve

    channel = channel_seed_simulated()[0]
    JobRun.objects.create(job=JobName.CLOSE_BUSINESS_DAY, business_date=date(2026, 11, 24),
                          next_business_date=date(2026, 11, 25), step="done", status=JobRunStatus.SUCCEEDED)
    statement_import(channel=channel, statement_date=date(2026, 11, 24), rows=[
        StatementRow(serial="po_Y-1", amount=Decimal("5.00"), status="succeeded"),
        StatementRow(serial="po_Z-1", amount=Decimal("6.00"), status="succeeded"),
    ])
    operations = user_in_role("operations")
    reconciliation_exception_resolve(exception_id=ReconciliationException.objects.get(reference="po_Z-1").pk,
                                     actor=operations, reason="explained")
    client.force_login(operations)
    body = client.get(reverse("console:dashboard")).content.decode()
    assert f"{JobName.CLOSE_BUSINESS_DAY} 2026-11-24 #1 succeeded" in body
    # Open ones only: the resolved exception is neither listed nor counted.
    assert 'Open reconciliation exceptions (<span data-count="reconciliation-open">1</span>)' in body
    assert "po_Y-1 missing_on_our_side (open)" in body
    assert "po_Z-1" not in body
