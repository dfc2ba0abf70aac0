"""Enrol a staff user's authenticator app: a pending TOTP device, confirmed only by a code it shows."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.ops.staff_otp import EnrolmentError, staff_totp_enrol_confirm, staff_totp_enrol_start


class Command(BaseCommand):
    help = (
        "Step 1: `totp_enroll USERNAME` creates a TOTP device for the staff user and prints its otpauth:// URL "
        "once (scan it into the authenticator app). Step 2: `totp_enroll USERNAME --verify CODE` with a code "
        "the app shows confirms the device; until then it signs nobody in."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--verify", metavar="CODE", help="confirm the pending device with a code from the app")
        parser.add_argument(
            "--replace", action="store_true", help="remove the user's TOTP devices now and start a new enrolment"
        )

    def handle(self, *args, username: str, verify: str | None, replace: bool, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff user {username!r}.")
        try:
            if verify is not None:
                staff_totp_enrol_confirm(user=user, token=verify, actor_label="command:totp_enroll")
                self.stdout.write(f"TOTP device of {username} confirmed; it now signs in with its codes.")
                return
            device = staff_totp_enrol_start(user=user, replace=replace, actor_label="command:totp_enroll")
        except EnrolmentError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(device.config_url)
        self.stderr.write(
            f"Scan the URL above into {username}'s authenticator app, then confirm with: "
            f"manage.py totp_enroll {username} --verify CODE"
        )
