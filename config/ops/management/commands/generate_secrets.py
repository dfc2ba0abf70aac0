"""Print fresh values for the secrets of deploy/env.example, as KEY=VALUE lines to paste into the env file.

Run it before the environment exists, under the local profile (the production profile refuses to start
without these very values); it reads and writes nothing else:

    DJANGO_ENV=local .venv/bin/python manage.py generate_secrets
"""

import secrets

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


def secret_values() -> dict[str, str]:
    return {
        # URL-safe characters only: no quoting or `$` expansion questions in env files.
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ADMIN_URL": f"staff-{secrets.token_hex(6)}/",
        "API_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }


class Command(BaseCommand):
    help = "Print new DJANGO_SECRET_KEY, DJANGO_ADMIN_URL, API_SECRET_ENCRYPTION_KEY and METRICS_TOKEN values."
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--only", action="append", choices=sorted(secret_values()), metavar="NAME",
            help="print only this value (repeatable), e.g. --only API_SECRET_ENCRYPTION_KEY for a key rotation",
        )

    def handle(self, *args, only: list[str] | None = None, **options) -> None:
        for name, value in secret_values().items():
            if not only or name in only:
                self.stdout.write(f"{name}={value}")
