"""Every staff page names the bank and the environment it runs in."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_admin_and_the_console_name_the_bank_and_the_environment(business_day, client, user_in_role, settings):
    settings.BANK_NAME = "Example Commercial Bank"
    client.force_login(user_in_role("finance"))
    for url in (reverse("admin:index"), reverse("console:dashboard")):
        page = client.get(url).content.decode()
        assert "Example Commercial Bank · T+0 advance funding console" in page, url
        assert 'class="env-banner env-other" role="status" data-environment="test"' in page, url
        assert "Django administration" not in page


def test_production_gets_its_own_banner_and_chinese_labels(business_day, client, user_in_role, settings):
    settings.DJANGO_ENV = "production"
    client.force_login(user_in_role("finance"))
    page = client.get(reverse("admin:index")).content.decode()
    assert 'class="env-banner env-production" role="status" data-environment="production"' in page
    client.post(reverse("set_language"), {"language": "zh-hans"})
    page = client.get(reverse("admin:index")).content.decode()
    assert "生产环境" in page and "T+0 垫资管理台" in page
