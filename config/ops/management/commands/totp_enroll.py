"""Give a staff user a TOTP device and print its otpauth:// URL once (for the authenticator app)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a confirmed TOTP device for USERNAME and print the otpauth:// URL to scan (shown once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="delete the user's existing TOTP devices")

    def handle(self, *args, username: str, replace: bool, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff user {username!r}.")
        with transaction.atomic():
            existing = TOTPDevice.objects.filter(user=user)
            if existing.exists() and not replace:
                raise CommandError(f"{username} already has a TOTP device; use --replace to issue a new one.")
            existing.delete()
            device = TOTPDevice.objects.create(user=user, name="default", confirmed=True)
        self.stdout.write(device.config_url)
