"""The console's calendar page: the warning banner, the upload form (maker) and the buttons (checker)."""

from datetime import date
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from funding.models import BusinessDay, CalendarChangeRequest, CalendarYear

pytestmark = pytest.mark.django_db

EXAMPLE_2027 = Path(__file__).resolve().parents[2] / "fixtures" / "calendar" / "2027-EXAMPLE-NOT-OFFICIAL.csv"


def _upload(client, **extra):
    return client.post(reverse("console:calendar"), {
        "year": "2027", "reason": "notice", "file": SimpleUploadedFile("2027.csv", EXAMPLE_2027.read_bytes()), **extra,
    })


def test_banner_from_30_days_before_the_last_published_day(client, user_in_role, business_day):
    client.force_login(user_in_role("finance"))
    BusinessDay.objects.update(current=date(2026, 11, 30))
    assert 'id="calendar-warning"' not in client.get(reverse("console:dashboard")).content.decode()
    BusinessDay.objects.update(current=date(2026, 12, 1))
    page = client.get(reverse("console:dashboard")).content.decode()
    assert 'id="calendar-warning"' in page
    assert "published up to 2026-12-31 (30 days from the business date). Publish 2027" in page
    assert 'id="calendar-warning"' in client.get(reverse("admin:index")).content.decode()


def test_a_maker_proposes_and_a_checker_publishes_from_the_console(client, user_in_role, business_day):
    maker = user_in_role("operations")
    checker = user_in_role("credit_approver")
    client.force_login(maker)
    response = _upload(client)
    assert response.status_code == 302
    proposal = CalendarChangeRequest.objects.get()
    assert (proposal.year, proposal.maker, proposal.status, len(proposal.days)) == (2027, maker, "pending", 22)
    page = client.get(reverse("console:calendar")).content.decode()
    assert f'data-proposal="{proposal.pk}"' in page
    assert 'data-action="approve"' not in page  # the maker sees no button, and holds no approve permission

    # The maker's crafted POST to the approve action changes nothing.
    client.post(reverse("admin:funding_calendarchangerequest_changelist"),
                {"action": "approve", "_selected_action": [proposal.pk], "apply": "1", "reason": ""})
    assert not CalendarYear.objects.filter(year=2027).exists()

    client.force_login(checker)
    page = client.get(reverse("console:calendar")).content.decode()
    assert 'data-action="approve"' in page
    assert 'id="calendar-propose"' not in page  # the checker initiates nothing
    assert client.post(reverse("console:calendar"), {"year": "2027"}).status_code == 403
    client.post(reverse("admin:funding_calendarchangerequest_changelist"),
                {"action": "approve", "_selected_action": [proposal.pk], "apply": "1", "reason": "checked"})
    assert CalendarYear.objects.get(year=2027).published_by == checker
    assert 'data-year="2027"' in client.get(reverse("console:calendar")).content.decode()


def test_a_bad_file_is_shown_with_its_lines(client, user_in_role, business_day):
    client.force_login(user_in_role("operations"))
    bad = SimpleUploadedFile("2027.csv", b"date,kind\n2027-01-02,holiday\n")
    response = client.post(reverse("console:calendar"), {"year": "2027", "file": bad})
    assert response.status_code == 400
    assert "line 2: 2027-01-02 is a Saturday" in response.content.decode()
    assert not CalendarChangeRequest.objects.exists()


def test_editing_a_day_in_the_admin_only_proposes_it(client, user_in_role, business_day):
    client.force_login(user_in_role("operations"))
    url = reverse("admin:funding_calendarday_change", args=["2026-11-26"])
    response = client.post(url, {"kind": "holiday", "name": "Typhoon", "reason": "PBoC notice"})
    assert response.status_code == 302
    proposal = CalendarChangeRequest.objects.get()
    assert (proposal.kind, proposal.days) == ("change_day", [
        {"date": "2026-11-26", "kind": "holiday", "is_business_day": False, "name": "Typhoon"}])
    from funding.models import CalendarDay

    assert CalendarDay.objects.get(date=date(2026, 11, 26)).is_business_day is True
