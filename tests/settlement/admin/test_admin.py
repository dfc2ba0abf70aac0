"""The staff screens render, and the manual-review form enforces four eyes through the services."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from settlement.models import ChannelStatement, ManualReview, PayoutAttempt
from settlement.services.disbursement import advance_dispatch, attempts_poll_due
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)


def _client(client, name):
    user = User.objects.create_superuser(name, f"{name}@bank.test", "pw-long-enough-123")
    client.force_login(user)
    return client


def test_screens_render_and_review_needs_two_people(client, advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    attempts_poll_due(now=attempt.review_due_at + timedelta(seconds=1))
    review = ManualReview.objects.get()
    maker = _client(client, "maker")
    for name in [
        "settlement_channel",
        "settlement_channelerrormapping",
        "funding_payout",
        "settlement_payoutattempt",
        "settlement_manualreview",
        "settlement_channelstatement",
        "settlement_reconciliationitem",
        "settlement_simulatedchanneltransfer",
    ]:
        response = maker.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
    assert "need manual review" in maker.get(reverse("admin:settlement_channel_changelist")).content.decode()
    url = reverse("admin:settlement_manualreview_change", args=[review.pk])
    assert maker.get(url).status_code == 200
    response = maker.post(url, {"action": "propose_succeeded", "reason": "bank confirmed"})
    assert response.status_code == 302
    response = maker.post(url, {"action": "approve", "reason": ""})
    assert response.status_code == 200 and "cannot approve" in response.content.decode()
    review.refresh_from_db()
    assert review.status == "proposed"
    checker = _client(client, "checker")
    assert checker.post(url, {"action": "approve", "reason": "ok"}).status_code == 302
    review.refresh_from_db()
    assert (review.status, review.resolution) == ("resolved", "succeeded")
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"


def test_csv_upload_and_report(client, advance_factory, channels):
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    staff = _client(client, "ops")
    today = timezone.localdate()
    csv = f"serial,amount,status\n{attempt.serial},100.00,succeeded\npo_other-1,3.00,succeeded\n".encode()
    response = staff.post(
        reverse("admin:settlement_statement_upload"),
        {
            "channel": channels["BEPS"].pk,
            "statement_date": today.isoformat(),
            "file": SimpleUploadedFile("s.csv", csv, content_type="text/csv"),
        },
    )
    assert response.status_code == 302
    statement = ChannelStatement.objects.get()
    assert (statement.source, statement.row_count) == ("csv", 2)
    bad = staff.post(
        reverse("admin:settlement_statement_upload"),
        {
            "channel": channels["BEPS"].pk,
            "statement_date": today.isoformat(),
            "file": SimpleUploadedFile(
                "s.csv", b"serial,amount,status\nx,abc,paid\n", content_type="text/csv"
            ),
        },
    )
    assert bad.status_code == 200 and "line 2" in bad.content.decode()
    # The right file under the wrong channel: refused whole, as by the command; nothing opens on IBPS.
    wrong = staff.post(
        reverse("admin:settlement_statement_upload"),
        {
            "channel": channels["IBPS"].pk,
            "statement_date": today.isoformat(),
            "file": SimpleUploadedFile("s.csv", csv, content_type="text/csv"),
        },
    )
    assert wrong.status_code == 200
    assert f"serial {attempt.serial} was sent through BEPS, not IBPS" in wrong.content.decode()
    assert list(ChannelStatement.objects.values_list("channel__code", flat=True)) == ["BEPS"]
    report = staff.get(reverse("admin:settlement_reconciliation_report") + f"?date={today.isoformat()}")
    assert report.status_code == 200
    body = report.content.decode()
    assert "po_other-1" in body and "missing_on_our_side" in body
    assert (
        staff.get(reverse("admin:settlement_channelstatement_change", args=[statement.pk])).status_code == 200
    )


def test_channel_form_refuses_a_bad_adapter_path(client, channels):
    staff = _client(client, "conf")
    beps = channels["BEPS"]
    url = reverse("admin:settlement_channel_change", args=[beps.pk])
    data = {
        "code": "BEPS",
        "name": beps.name,
        "enabled": "on",
        "healthy": "on",
        "fee_fixed": "0.50",
        "fee_bps": "0",
        "min_amount": "0.01",
        "max_amount": "50000.00",
        "service_start": "",
        "service_end": "",
        "bank_codes": "",
        "adapter": "settlement.models.Channel",
        "adapter_settings": "{}",
        "error_mappings-TOTAL_FORMS": "0",
        "error_mappings-INITIAL_FORMS": "0",
    }
    response = staff.post(url, data)
    assert response.status_code == 200 and "is not a ChannelAdapter subclass" in response.content.decode()
    beps.refresh_from_db()
    assert beps.adapter.endswith("SimulatedChannelAdapter")
    data["adapter"] = beps.adapter
    data["reason"] = "check"  # issue 14: saving proposes the change (four eyes) and needs a reason
    assert staff.post(url, data).status_code == 302


def test_the_simulated_banks_table_is_in_the_console_of_local_runs_only():
    import os
    import subprocess
    import sys

    from django.contrib import admin as django_admin

    from settlement.models import SimulatedChannelTransfer
    from tests.config.ops.test_settings import GOOD, ROOT

    assert django_admin.site.is_registered(SimulatedChannelTransfer)  # DJANGO_ENV=test is a local run
    code = (
        "import django; django.setup(); from django.contrib import admin; admin.autodiscover(); "
        "from settlement.models import SimulatedChannelTransfer as m; print(admin.site.is_registered(m))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_POOL"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**env, **GOOD, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_payouts_filter_by_channel_company_and_status_and_reviews_are_searchable(client, advance_factory, channels):
    import re

    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)
    first = advance_factory("100.00")
    advance_dispatch(advance_id=first.pk)
    second = advance_factory("200.00")  # after: a dispatch fills its batch with other advances' due payouts
    attempt = PayoutAttempt.objects.get()
    attempts_poll_due(now=attempt.review_due_at + timedelta(seconds=1))
    staff = _client(client, "filters")
    url = reverse("admin:funding_payout_changelist")

    def listed(**query) -> set[str]:
        page = staff.get(url, query).content.decode()
        return set(re.findall(r">(po_[0-9A-Z]+)<", page))

    second_payout = second.payouts.get().public_id
    assert listed(**{"attempts__channel__id__exact": attempt.channel_id}) == {first.payouts.get().public_id}
    assert listed(**{"advance__company__id__exact": second.company_id}) == {second_payout}
    assert listed(status__exact="pending") == {second_payout}
    reviews = staff.get(reverse("admin:settlement_manualreview_changelist"), {"q": attempt.serial}).content.decode()
    assert attempt.serial in reviews
    none = staff.get(reverse("admin:settlement_manualreview_changelist"), {"q": "no-such-serial"}).content.decode()
    assert attempt.serial not in none
    advances = staff.get(reverse("admin:funding_advance_changelist"),
                         {"company__id__exact": first.company_id}).content.decode()
    assert first.public_id in advances and second.public_id not in advances
