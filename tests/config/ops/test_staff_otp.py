import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(db):
    return User.objects.create_user("ops-staff", password=PASSWORD, is_staff=True, is_superuser=True)


def current_token(device: TOTPDevice, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


@override_settings(STAFF_OTP_REQUIRED=True)
def test_staff_without_a_verified_device_are_sent_to_login(client, staff):
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    # Password alone is not enough on the login form either.
    response = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD})
    assert response.status_code == 200
    assert "otp_token" in response.content.decode()
    assert client.get("/admin/").status_code == 302


@override_settings(STAFF_OTP_REQUIRED=True)
def test_password_plus_totp_logs_staff_in(client, staff):
    out = StringIO()
    call_command("totp_enroll", staff.username, stdout=out, stderr=StringIO())
    assert out.getvalue().startswith("otpauth://totp/")
    device = TOTPDevice.objects.get(user=staff)
    call_command("totp_enroll", staff.username, "--verify", current_token(device), stdout=StringIO())
    device.refresh_from_db()
    # A code is good once: the login uses the next one (within the device's tolerance of one step).
    response = client.post(
        "/admin/login/",
        {"username": staff.username, "password": PASSWORD, "otp_device": device.persistent_id,
         "otp_token": current_token(device, steps_ahead=1), "next": "/admin/"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/admin/").status_code == 200


@override_settings(STAFF_OTP_REQUIRED=False)
def test_local_runs_do_not_require_a_device(client, staff):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_otp_is_off_for_test_runs_and_on_in_production():
    from django.conf import settings

    from tests.config.ops.test_settings import load_settings

    assert settings.STAFF_OTP_REQUIRED is False
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(" True")  # STAFF_OTP_REQUIRED under DJANGO_ENV=production


@pytest.mark.django_db
def test_enrol_refuses_a_second_device_without_replace(staff):
    call_command("totp_enroll", staff.username, stdout=StringIO(), stderr=StringIO())
    with pytest.raises(Exception, match="already has a TOTP device"):
        call_command("totp_enroll", staff.username, stdout=StringIO(), stderr=StringIO())
    call_command("totp_enroll", staff.username, "--replace", stdout=StringIO(), stderr=StringIO())
    assert TOTPDevice.objects.filter(user=staff).count() == 1


def _login(client, staff, device, token):
    return client.post(
        "/admin/login/",
        {"username": staff.username, "password": PASSWORD, "otp_device": device.persistent_id,
         "otp_token": token, "next": "/admin/"},
    )


@override_settings(STAFF_OTP_REQUIRED=True)
def test_a_device_signs_nobody_in_until_a_code_from_it_is_verified(client, staff):
    from django.core.management.base import CommandError

    from funding.models import AuditEvent

    call_command("totp_enroll", staff.username, stdout=StringIO(), stderr=StringIO())
    device = TOTPDevice.objects.get(user=staff)
    assert device.confirmed is False
    # Pending: a valid code from it does not sign in (the login form does not even offer the device).
    assert _login(client, staff, device, current_token(device)).status_code == 200
    assert client.get("/admin/").status_code == 302
    # A wrong code does not confirm it.
    wrong = f"{(int(current_token(device)) + 1) % 10**6:06d}"
    with pytest.raises(CommandError, match="does not match"):
        call_command("totp_enroll", staff.username, "--verify", wrong, stdout=StringIO())
    device.refresh_from_db()
    assert device.confirmed is False
    # The right one does (after the throttle's back-off from the wrong one).
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    out = StringIO()
    call_command("totp_enroll", staff.username, "--verify", current_token(device), stdout=out)
    assert "confirmed" in out.getvalue()
    device.refresh_from_db()
    assert device.confirmed is True
    with pytest.raises(CommandError, match="no TOTP device waiting for confirmation"):
        call_command("totp_enroll", staff.username, "--verify", current_token(device), stdout=StringIO())
    assert list(AuditEvent.objects.filter(object_id=str(staff.pk)).order_by("id").values_list("action", flat=True)) == [
        "staff_otp.enrolment_started", "staff_otp.enrolment_failed", "staff_otp.enrolment_confirmed"
    ]


@pytest.mark.django_db
def test_replace_stops_the_old_device_at_once(staff):
    call_command("totp_enroll", staff.username, stdout=StringIO(), stderr=StringIO())
    old = TOTPDevice.objects.get(user=staff)
    call_command("totp_enroll", staff.username, "--verify", current_token(old), stdout=StringIO())
    call_command("totp_enroll", staff.username, "--replace", stdout=StringIO(), stderr=StringIO())
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert list(TOTPDevice.objects.filter(user=staff).values_list("confirmed", flat=True)) == [False]


@override_settings(STAFF_OTP_REQUIRED=True)
def test_ten_backup_codes_each_sign_in_once(client, staff):
    from django.test import Client
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    out = StringIO()
    call_command("staff_backup_codes", staff.username, stdout=out, stderr=StringIO())
    codes = out.getvalue().split()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 8 for code in codes)
    device = StaticDevice.objects.get(user=staff)
    assert device.confirmed and device.token_set.count() == 10

    response = _login(client, staff, device, codes[0])
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device=device).count() == 9

    again = Client()
    assert _login(again, staff, device, codes[0]).status_code == 200  # used up
    assert again.get("/admin/").status_code == 302

    # A new set voids the old one.
    call_command("staff_backup_codes", staff.username, stdout=StringIO(), stderr=StringIO())
    fresh = StaticDevice.objects.get(user=staff)
    third = Client()
    assert _login(third, staff, fresh, codes[1]).status_code == 200
    assert third.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_backup_codes_are_not_listed_in_the_admin():
    from django.contrib import admin
    from django_otp.plugins.otp_static.models import StaticDevice

    assert not admin.site.is_registered(StaticDevice)
