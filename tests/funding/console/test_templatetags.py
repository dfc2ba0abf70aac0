from datetime import timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template

from funding.console.templatetags.console import age_filter, money_filter, percent_filter


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1234567.891"), "1,234,567.89"),
        (Decimal("1234567.895"), "1,234,567.90"),  # half-up
        (Decimal("-1234.5"), "-1,234.50"),
        (Decimal("0"), "0.00"),
        (1000000, "1,000,000.00"),
        ("9999999999999.99", "9,999,999,999,999.99"),
        (None, "—"),
        ("not money", "—"),
        (0.1, "—"),  # floats are refused, as everywhere money is handled
    ],
)
def test_money_filter(value, shown):
    assert money_filter(value) == shown


def test_money_filter_in_a_template():
    rendered = Template("{% load console %}{{ amount|money }}").render(
        Context({"amount": Decimal("1500000")})
    )
    assert rendered == "1,500,000.00"


def test_percent_and_age():
    assert percent_filter(Decimal("25.00")) == "25.00%"
    assert percent_filter(None) == "—"
    assert age_filter(timedelta(days=2, hours=3, minutes=4)) == "2d 3h"
    assert age_filter(timedelta(hours=3, minutes=4)) == "3h 04m"
    assert age_filter(timedelta(minutes=4, seconds=59)) == "4m"


@pytest.mark.django_db
def test_admin_change_url_only_for_registered_models():
    from django.contrib.auth.models import Permission, User

    from funding.console.templatetags.console import admin_change_url

    user = User.objects.create_user("someone")
    assert admin_change_url(user) == f"/admin/auth/user/{user.pk}/change/"
    assert admin_change_url(Permission.objects.first()) == ""  # auth.Permission has no admin page
    assert admin_change_url(None) == ""
