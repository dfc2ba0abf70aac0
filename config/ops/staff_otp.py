"""Two-factor (TOTP) login for staff: the admin refuses staff not verified by a device, outside local runs."""

from django.conf import settings
from django.contrib import admin
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class OTPRequiredAdminMixin:
    """Read the setting per request so one process (and the tests) can switch it."""

    @property
    def login_form(self):
        return OTPAdminAuthenticationForm if settings.STAFF_OTP_REQUIRED else None

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
