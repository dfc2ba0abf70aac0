import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse

from funding.console.models import LoginFailure

PASSWORD = "correct horse battery"


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=3)
def test_admin_login_is_throttled_after_repeated_failures(client):
    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    url = reverse("admin:login")
    for _ in range(3):
        response = client.post(url, {"username": "teller", "password": "wrong"})
        assert response.status_code == 200
    assert LoginFailure.objects.filter(username="teller").count() == 3
    # Locked: even the right password is refused, and the refused attempt is not checked or recorded.
    locked = client.post(url, {"username": "teller", "password": PASSWORD})
    assert locked.status_code == 200 and "_auth_user_id" not in client.session
    assert LoginFailure.objects.filter(username="teller").count() == 3


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=3)
def test_a_successful_login_clears_the_failures(client):
    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    for _ in range(2):
        assert authenticate(username="teller", password="wrong") is None
    assert authenticate(username="teller", password=PASSWORD) is not None
    assert LoginFailure.objects.count() == 0
    response = client.post(reverse("admin:login"), {"username": "teller", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=2)
def test_failures_from_one_address_lock_that_address(client):
    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    url = reverse("admin:login")
    client.post(url, {"username": "alice", "password": "x"}, REMOTE_ADDR="10.0.0.9")
    client.post(url, {"username": "bob", "password": "x"}, REMOTE_ADDR="10.0.0.9")
    client.post(url, {"username": "teller", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert "_auth_user_id" not in client.session
    client.post(url, {"username": "teller", "password": PASSWORD}, REMOTE_ADDR="10.0.0.10")
    assert "_auth_user_id" in client.session
