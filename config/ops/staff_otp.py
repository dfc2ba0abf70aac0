"""Two-factor (TOTP) login for staff: the admin refuses staff not verified by a device, outside local runs."""

from django.conf import settings
from django.contrib import admin
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class ConfirmedDeviceAuthenticationForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, but a device that was never confirmed is no device.

    django-otp lists only confirmed devices, yet accepts any device of the user whose id is posted: a device
    whose enrolment was started and never verified (totp_enroll without --verify) would otherwise sign in.
    """

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        return device if device is not None and device.confirmed else None


class OTPRequiredAdminMixin:
    """Read the setting per request so one process (and the tests) can switch it."""

    @property
    def login_form(self):
        return ConfirmedDeviceAuthenticationForm if settings.STAFF_OTP_REQUIRED else None

    @property
    def login_template(self):
        return OTPAdminSite.login_template if settings.STAFF_OTP_REQUIRED else None

    def has_permission(self, request) -> bool:
        allowed = super().has_permission(request)
        if allowed and settings.STAFF_OTP_REQUIRED:
            is_verified = getattr(request.user, "is_verified", None)
            return bool(is_verified and is_verified())
        return allowed


def admin_require_otp(site=None) -> None:
    """Give the admin site (default: django.contrib.admin.site) the OTP requirement, keeping its registry."""
    site = site if site is not None else admin.site
    current = site.__class__
    if issubclass(current, OTPRequiredAdminMixin):
        return
    site.__class__ = type(f"OTPRequired{current.__name__}", (OTPRequiredAdminMixin, current), {})


def admin_hide_backup_codes(site=None) -> None:
    """django-otp's own admin for static devices lists the backup codes in clear: nobody reads them there."""
    from django_otp.plugins.otp_static.models import StaticDevice

    site = site if site is not None else admin.site
    if site.is_registered(StaticDevice):
        site.unregister(StaticDevice)


# Enrolment and backup codes (commands totp_enroll and staff_backup_codes) ---------------------------------

BACKUP_CODES = 10
BACKUP_DEVICE_NAME = "backup codes"


class EnrolmentError(Exception):
    """A staff member's second factor cannot be changed as asked; the message says why."""


def staff_totp_enrol_start(*, user, replace: bool, actor_label: str):
    """A new TOTP device, not yet confirmed: it signs nobody in until a code from it is verified.

    With `replace`, the user's existing TOTP devices are removed at once (a lost phone must stop working now).
    """
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from funding.services.audit import audit_record

    with transaction.atomic():
        existing = TOTPDevice.objects.select_for_update().filter(user=user)
        if existing.exists() and not replace:
            pending = not existing.filter(confirmed=True).exists()
            raise EnrolmentError(
                f"{user.get_username()} already has a TOTP device"
                + (" waiting for its first code" if pending else "")
                + "; use --replace to issue a new one."
            )
        removed = existing.count()
        existing.delete()
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=False)
        audit_record(action="staff_otp.enrolment_started", obj=user, actor_label=actor_label,
                     after={"replaced_devices": removed})
    return device


def staff_totp_enrol_confirm(*, user, token: str, actor_label: str):
    """Confirm the user's pending TOTP device with a code it shows; EnrolmentError if there is none or the
    code does not match (failures are throttled by django-otp, like logins)."""
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from funding.services.audit import audit_record

    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None:
            raise EnrolmentError(f"{user.get_username()} has no TOTP device waiting for confirmation.")
        if not device.verify_token(token.strip()):
            outcome = "failed"
        else:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            outcome = "confirmed"
        audit_record(action=f"staff_otp.enrolment_{outcome}", obj=user, actor_label=actor_label)
    if outcome == "failed":
        raise EnrolmentError("The code does not match; check the phone's clock and try the next code.")
    return device


def staff_backup_codes_issue(*, user, actor_label: str, count: int = BACKUP_CODES) -> list[str]:
    """Fresh one-time backup codes (django-otp static tokens), replacing any earlier ones. Returned once."""
    from django.db import transaction
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    from funding.services.audit import audit_record

    with transaction.atomic():
        replaced = StaticDevice.objects.filter(user=user).count()
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        codes: list[str] = []
        while len(codes) < count:
            code = StaticToken.random_token()
            if code not in codes:
                codes.append(code)
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
        audit_record(action="staff_otp.backup_codes_issued", obj=user, actor_label=actor_label,
                     after={"codes": count, "replaced_sets": replaced})
    return codes
