"""config.middleware: signed API requests go around the browser's middleware; browser requests do not."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.utils import translation

from config.middleware import BROWSER_ONLY, SignedApiMiddleware, api_middleware
from funding.models import Advance
from tests.factories import company_with_line
from tests.funding.api.conftest import SignedClient, advance_body, error_of, signed_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(business_day) -> SignedClient:
    return signed_client_for(company_with_line(limit="1000000.00")[0])


def test_the_api_goes_through_exactly_the_middleware_after_the_shortcut_that_is_not_browser_only():
    assert api_middleware() == [
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]
    # Every skipped middleware is installed, after the shortcut: none is skipped by a misspelt name.
    after = settings.MIDDLEWARE[settings.MIDDLEWARE.index("config.middleware.SignedApiMiddleware") + 1 :]
    assert BROWSER_ONLY <= set(after)


def test_a_middleware_added_after_the_shortcut_applies_to_the_api_unless_named_browser_only():
    added = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with override_settings(MIDDLEWARE=added):
        assert api_middleware()[-1] == "django.middleware.gzip.GZipMiddleware"


def test_without_the_shortcut_in_middleware_it_refuses_to_start():
    without = [m for m in settings.MIDDLEWARE if m != "config.middleware.SignedApiMiddleware"]
    with override_settings(MIDDLEWARE=without), pytest.raises(ImproperlyConfigured):
        SignedApiMiddleware(lambda request: None)


def test_an_api_answer_sets_no_cookie_varies_on_nothing_and_keeps_the_security_headers(api):
    api.client.cookies["sessionid"] = "not-a-session"
    api.client.cookies["csrftoken"] = "x" * 32
    response = api.post("/api/v1/advances", advance_body(), headers={"Accept-Language": "zh-hans"})
    assert response.status_code == 201, response.content
    assert not response.cookies
    for header in ("Vary", "Content-Language", "Set-Cookie"):
        assert header not in response.headers, header
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Length"] == str(len(response.content))
    assert len(response["X-Request-Id"]) == 32


def test_an_api_answer_is_in_english_even_after_a_browser_request_left_chinese_active(api):
    translation.activate("zh-hans")  # what the worker's thread keeps after an admin page in Chinese
    try:
        response = api.put("/api/v1/webhook-endpoint", {"url": "not a url"}, headers={"Accept-Language": "zh-hans"})
    finally:
        translation.deactivate()
    error = error_of(response)
    assert response.status_code == 400
    assert error["code"] == "validation_error"
    assert error["details"] == {"url": ["Enter a valid URL."]}


def test_an_api_post_without_a_csrf_token_is_not_refused_for_csrf():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/advances", advance_body(), content_type="application/json")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    assert Advance.objects.count() == 0


def test_a_browser_request_still_gets_sessions_language_and_csrf():
    client = Client(enforce_csrf_checks=True)
    login = f"/{settings.ADMIN_URL}login/"
    page = client.get(login, headers={"Accept-Language": "zh-hans"})
    assert page.status_code == 200
    assert page["Content-Language"] == "zh-hans"
    assert "Accept-Language" in page["Vary"] and "Cookie" in page["Vary"]
    assert "csrftoken" in page.cookies
    # CSRF is enforced for the admin: a login POST without the token is refused.
    refused = client.post(login, {"username": "x", "password": "y"})
    assert refused.status_code == 403


def test_the_schema_under_api_but_not_v1_keeps_the_browser_stack():
    response = Client().get("/api/schema/", headers={"Accept-Language": "zh-hans"})
    assert response.status_code == 200
    assert response["Content-Language"] == "zh-hans"
