"""One-time backup codes for a staff user's second factor, shown once."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.ops.staff_otp import BACKUP_CODES, staff_backup_codes_issue


class Command(BaseCommand):
    help = (
        f"Issue {BACKUP_CODES} one-time backup codes for USERNAME (each signs in once, in place of an "
        "authenticator code) and print them once; earlier codes of that user stop working."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff user {username!r}.")
        codes = staff_backup_codes_issue(user=user, actor_label="command:staff_backup_codes")
        self.stdout.write("\n".join(codes))
        self.stderr.write(
            f"{len(codes)} backup codes for {username}, shown only now: each works once. Earlier codes are void."
        )
