"""The four-eyes limit increase in a real browser: Playwright driving Debian's Chromium against a live server.

A maker proposes a limit increase in the admin; the same person (who also holds the checker role, so the
console offers the button) is refused on their own request; a second person approves; the dashboard shows
the new effective limit. Screenshots go to test-artifacts/. Chromium comes from the system packages (installed
here when missing and we are root); never a browser downloaded by Playwright.
"""

import os
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections

from funding.models import ChangeRequestStatus, CreditLine
from tests.factories import company_with_line

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
PASSWORD = "correct horse battery staple"
BUDGET_SECONDS = 90


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        if os.geteuid() != 0:
            pytest.skip("Debian's chromium is not installed and we are not root: apt-get install chromium")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env,
                       capture_output=True, timeout=600)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture
def browser(chromium, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            # ORM calls made while Playwright runs may hold their own connection: close it here, or the
            # test database cannot be dropped at the end of the session.
            connections.close_all()


def _staff(username: str, *roles: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.set(Group.objects.filter(name__in=roles))
    return user


def _login(browser, base_url: str, username: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US").new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/admin/login/?next=/admin/console/queues/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/console/queues/")
    return page


def _messages(page) -> str:
    """The admin's messages after a submit: waits for the next page to show them."""
    page.locator("ul.messagelist li").first.wait_for()
    return " | ".join(page.locator("ul.messagelist li").all_inner_texts())


def test_maker_proposes_same_user_refused_checker_approves_dashboard_shows_limit(live_server, browser,
                                                                                   business_day):
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    company, line = company_with_line(code="PAYCO-BROWSER", limit="1000000.00")
    _staff("maker", "credit_officer", "credit_approver")
    _staff("checker", "credit_approver")
    base = live_server.url

    # The maker proposes 1,500,000.00 from the work queue (the admin's own action and form).
    maker = _login(browser, base, "maker")
    maker.click(f"#queue-lines tr[data-company='{company.code}'] button[data-action='propose_change']")
    maker.fill("#id_approved_limit", "1500000.00")
    maker.fill("#id_reason", "Higher settlement volume expected for Double Eleven")
    maker.click("input[type=submit]")
    assert "Requests proposed: 1." in _messages(maker)
    change = line.change_requests.get(status=ChangeRequestStatus.PENDING)

    # The same person tries to approve their own request and is refused by the four-eyes rule.
    maker.goto(f"{base}/admin/console/queues/")
    maker.click(f"#queue-approvals tr[data-request='{change.pk}'] button[data-action='approve']")
    maker.fill("#id_reason", "looks fine to me")
    maker.click("input[type=submit]")
    refusal = _messages(maker)
    assert "four_eyes" in refusal, refusal
    maker.screenshot(path=str(ARTIFACTS / "console_maker_refused.png"), full_page=True)
    change.refresh_from_db()
    assert change.status == ChangeRequestStatus.PENDING
    assert CreditLine.objects.get(pk=line.pk).effective_limit == Decimal("1000000.00")

    # A different checker approves it; the approval screen is kept as an artifact.
    checker = _login(browser, base, "checker")
    checker.click(f"#queue-approvals tr[data-request='{change.pk}'] button[data-action='approve']")
    checker.fill("#id_reason", "Volumes checked against last year's statements")
    checker.screenshot(path=str(ARTIFACTS / "console_approval.png"), full_page=True)
    checker.click("input[type=submit]")
    assert "Requests approved: 1." in _messages(checker)

    # The dashboard shows the new effective limit, with thousands separators.
    checker.goto(f"{base}/admin/console/")
    row = checker.locator(f"#exposures tr[data-company='{company.code}']")
    cells = row.locator("td").all_inner_texts()
    assert cells[2:4] == ["1,500,000.00", "1,500,000.00"], cells
    checker.screenshot(path=str(ARTIFACTS / "console_dashboard.png"), full_page=True)
    assert CreditLine.objects.get(pk=line.pk).effective_limit == Decimal("1500000.00")
    assert time.monotonic() - started < BUDGET_SECONDS
