"""Create a staff user with its role(s): the first staff of an installation, or any later one from a shell.

    manage.py staff_create alice --role credit_officer --email alice@bank.example
    manage.py staff_create root-it --superuser              # the bank IT's administrator, no business role
    manage.py staff_create bob --role finance --password-stdin < secret-file

The password is asked twice (or read as one line from standard input) and must pass the password validators.
Outside local runs staff also need a TOTP device before they can use the console: `manage.py totp_enroll USER`.
"""

import getpass
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from funding.console.roles import ROLES
from funding.console.staff import staff_user_create
from funding.errors import EngineError


class Command(BaseCommand):
    help = "Create a staff user with the given role(s) (audited); the password is prompted for."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", action="append", dest="roles", default=[], choices=sorted(ROLES),
                            help="a role (group) to hold; repeatable")
        parser.add_argument("--superuser", action="store_true", help="all permissions (bank IT administrator)")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def _password(self, from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty():
            raise CommandError("No terminal to ask for the password: use --password-stdin.")
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise CommandError("The two passwords differ.")
        return first

    def handle(self, *args, username: str, roles: list[str], superuser: bool, email: str, password_stdin: bool,
               **options) -> None:
        password = self._password(password_stdin)
        try:
            user = staff_user_create(
                username=username, password=password, roles=roles, superuser=superuser, email=email,
                actor_label="manage.py staff_create",
            )
        except EngineError as exc:
            problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.details.items())
            raise CommandError(f"staff user not created: {problems or exc.message}") from exc
        held = ", ".join(sorted(roles)) or "none"
        self.stdout.write(f"staff user {user.username} created (roles: {held}; superuser: {superuser})")
        if settings.STAFF_OTP_REQUIRED:
            self.stdout.write(f"next: manage.py totp_enroll {user.username} (a TOTP device is required to log in)")
