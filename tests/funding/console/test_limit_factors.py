"""The credit line's page shows its limit factors with their inputs and the history of computations."""

import pytest

from tests.factories import calendar_and_business_date
from tests.funding.services.test_limits import TUESDAY, _approve_new_line, _company_with_history

pytestmark = pytest.mark.django_db


def test_the_console_shows_the_factors_and_their_history(client, user_in_role):
    calendar_and_business_date(current=TUESDAY)
    line = _approve_new_line(_company_with_history(), flow_multiple="1.5", flow_window_days=5)
    client.force_login(user_in_role("credit_approver"))
    page = client.get(f"/admin/funding/creditline/{line.pk}/change/").content.decode()
    assert "factor=flow, value=900000.00, multiple=1.50, base=600000.00, as_of=2026-11-24" in page
    assert "<td>Line approved</td><td>2026-11-24</td><td>5000000.00</td><td>900000.00</td>" in page
    assert client.get("/admin/funding/limitfactorsnapshot/").status_code == 200
