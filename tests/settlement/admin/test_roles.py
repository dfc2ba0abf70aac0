"""Disbursement screens under the staff roles: operations resolve manual reviews (two people), finance
uploads statements, and the other roles are refused."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from settlement.models import ChannelStatement, ManualReview, PayoutAttempt
from settlement.services.disbursement import advance_dispatch, attempts_poll_due
from tests.settlement.conftest import channel_configure

pytestmark = pytest.mark.django_db(transaction=True)


def _as(role: str, name: str) -> Client:
    user = User.objects.create_user(name, password="pw-long-enough-123", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def review(advance_factory, channels):
    channel_configure(channels["BEPS"], timeout_rate=1, timeout_lost_share=1)
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    attempts_poll_due(now=attempt.review_due_at + timedelta(seconds=1))
    return ManualReview.objects.get()


def test_two_operations_staff_resolve_a_review_and_other_roles_cannot(review):
    url = reverse("admin:settlement_manualreview_change", args=[review.pk])
    finance = _as("finance", "fin")
    assert finance.get(url).status_code == 403
    assert finance.post(url, {"action": "propose_succeeded", "reason": "x"}).status_code == 403
    auditor = _as("auditor", "aud")
    assert auditor.get(url).status_code == 200  # read-only view
    assert auditor.post(url, {"action": "propose_succeeded", "reason": "x"}).status_code == 403
    review.refresh_from_db()
    assert review.status == "open"

    maker = _as("operations", "ops-maker")
    assert maker.post(url, {"action": "propose_succeeded", "reason": "bank confirmed"}).status_code == 302
    refused = maker.post(url, {"action": "approve", "reason": ""})
    assert refused.status_code == 200 and "cannot approve" in refused.content.decode()
    checker = _as("operations", "ops-checker")
    assert checker.post(url, {"action": "approve", "reason": "ok"}).status_code == 302
    review.refresh_from_db()
    assert (review.status, review.resolution, review.proposed_by.username, review.approved_by.username) == (
        "resolved", "succeeded", "ops-maker", "ops-checker")


def test_finance_uploads_a_statement_and_operations_may_not(advance_factory, channels):
    advance = advance_factory("100.00")
    advance_dispatch(advance_id=advance.pk)
    attempt = PayoutAttempt.objects.get()
    upload = reverse("admin:settlement_statement_upload")

    def post(client):
        csv = f"serial,amount,status\n{attempt.serial},100.00,succeeded\n".encode()
        return client.post(upload, {"channel": channels["BEPS"].pk,
                                    "statement_date": timezone.localdate().isoformat(),
                                    "file": SimpleUploadedFile("s.csv", csv, content_type="text/csv")})

    refused = post(_as("operations", "ops"))
    assert refused.status_code == 302 and refused["Location"] == reverse(
        "admin:settlement_channelstatement_changelist")
    assert not ChannelStatement.objects.exists()
    assert post(_as("finance", "fin")).status_code == 302
    assert ChannelStatement.objects.get().row_count == 1
