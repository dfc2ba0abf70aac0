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


def current_token(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
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
    call_command("totp_enroll", staff.username, stdout=out)
    assert out.getvalue().startswith("otpauth://totp/")
    device = TOTPDevice.objects.get(user=staff)
    response = client.post(
        "/admin/login/",
        {"username": staff.username, "password": PASSWORD, "otp_device": device.persistent_id,
         "otp_token": current_token(device), "next": "/admin/"},
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

    from tests.ops.test_settings import load_settings

    assert settings.STAFF_OTP_REQUIRED is False
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(" True")  # STAFF_OTP_REQUIRED under DJANGO_ENV=production


@pytest.mark.django_db
def test_enrol_refuses_a_second_device_without_replace(staff):
    call_command("totp_enroll", staff.username, stdout=StringIO())
    with pytest.raises(Exception, match="already has a TOTP device"):
        call_command("totp_enroll", staff.username, stdout=StringIO())
    call_command("totp_enroll", staff.username, "--replace", stdout=StringIO())
    assert TOTPDevice.objects.filter(user=staff).count() == 1
