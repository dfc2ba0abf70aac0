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


# Behind the bank's proxies: the real client address, per (username, address), atomic.

PROXY = "10.0.0.2"


def _login(client, username, password, client_address):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_address}",  # the left entry is forged by the client
    )


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=3, TRUSTED_PROXIES=[PROXY])
def test_strangers_cannot_lock_a_staff_member_out_of_their_own_desk(client):
    from django.test import Client

    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    for stranger in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        for _ in range(4):
            _login(Client(), "teller", "guess", stranger)
    # Each stranger's address is locked for this name (the fourth try was refused unchecked)...
    assert LoginFailure.objects.filter(username="teller").count() == 9
    assert set(LoginFailure.objects.values_list("ip_address", flat=True)) == {
        "203.0.113.1", "203.0.113.2", "203.0.113.3"
    }
    refused = Client()
    _login(refused, "teller", PASSWORD, "203.0.113.1")
    assert "_auth_user_id" not in refused.session
    # ...while the teller, at their own desk behind the same proxy, signs in.
    response = _login(client, "teller", PASSWORD, "198.51.100.20")
    assert response.status_code == 302 and "_auth_user_id" in client.session


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=3, TRUSTED_PROXIES=[PROXY])
def test_the_throttle_keys_on_the_real_client_not_the_proxy_nor_a_forged_entry(client):
    from django.test import Client

    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    for _ in range(3):
        _login(Client(), "teller", "guess", "203.0.113.1")
    # Without the forwarded header the proxy's own address would be the key: it is not locked.
    assert LoginFailure.objects.filter(ip_address=PROXY).count() == 0
    # Forging a different left entry from the locked address changes nothing.
    forged = Client()
    forged.post(reverse("admin:login"), {"username": "teller", "password": PASSWORD}, REMOTE_ADDR=PROXY,
                HTTP_X_FORWARDED_FOR="198.51.100.20, 203.0.113.1")
    assert "_auth_user_id" not in forged.session
    # An untrusted sender's header is ignored: it is keyed on its own address.
    direct = Client()
    direct.post(reverse("admin:login"), {"username": "teller", "password": PASSWORD}, REMOTE_ADDR="203.0.113.1",
                HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert "_auth_user_id" not in direct.session  # 203.0.113.1 is locked for teller, whatever it claims


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=2, LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS=5)
def test_the_per_address_limit_is_its_own_setting(client):
    url = reverse("admin:login")
    for name in ("a", "b", "c", "d", "e"):
        client.post(url, {"username": name, "password": "x"}, REMOTE_ADDR="10.0.0.9")
    assert LoginFailure.objects.count() == 5
    client.post(url, {"username": "f", "password": "x"}, REMOTE_ADDR="10.0.0.9")
    assert LoginFailure.objects.count() == 5  # refused unchecked


@pytest.mark.django_db
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=2, LOGIN_THROTTLE_WINDOW_SECONDS=900)
def test_the_lock_ends_with_its_window(client):
    from datetime import timedelta

    from django.utils import timezone

    from funding.console.models import LoginThrottle
    from funding.console.throttle import login_is_locked

    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    for _ in range(2):
        assert authenticate(username="teller", password="wrong") is None
    assert login_is_locked(username="teller", ip_address=None)
    assert authenticate(username="teller", password=PASSWORD) is None
    LoginThrottle.objects.update(window_started=timezone.now() - timedelta(seconds=901))
    assert not login_is_locked(username="teller", ip_address=None)
    assert authenticate(username="teller", password=PASSWORD) is not None
    assert not LoginThrottle.objects.filter(key="user:-:teller").exists()  # a success restarts the pair


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_THROTTLE_MAX_FAILURES=3, LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS=100)
def test_concurrent_attempts_never_get_more_password_checks_than_the_limit():
    import threading

    from django.db import connection
    from django.test import RequestFactory

    User.objects.create_user("teller", password=PASSWORD, is_staff=True)
    barrier = threading.Barrier(12)
    results = []

    def attempt():
        try:
            request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.1")
            barrier.wait()
            results.append(authenticate(request, username="teller", password="wrong"))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 12
    # Exactly three attempts reached the password check (each recorded a failure); nine were refused unchecked.
    assert LoginFailure.objects.filter(username="teller", ip_address="203.0.113.1").count() == 3
