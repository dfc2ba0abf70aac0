"""Key rotation: re-encrypt every stored API key and webhook secret with the first API_SECRET_ENCRYPTION_KEY."""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from funding.api.services import api_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key and webhook signing secret with the first key of "
        "API_SECRET_ENCRYPTION_KEY (put the new key first, keep the old ones after it, run this, then drop "
        "the old ones). Safe to run again: secrets already under the first key are left alone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    def handle(self, *args, json: bool = False, **options) -> None:
        result = api_secrets_reencrypt(actor_label="command:reencrypt_api_secrets")
        summary = {
            "reencrypted": result.total_reencrypted,
            "api_keys": result.reencrypted["api_key"],
            "webhook_endpoints": result.reencrypted["webhook_endpoint"],
            "already_current": result.current,
            "unreadable": result.unreadable,
        }
        if json:
            self.stdout.write(jsonlib.dumps(summary, sort_keys=True))
        else:
            self.stdout.write(
                f"Re-encrypted {result.total_reencrypted} secrets with the first key "
                f"({summary['api_keys']} API keys, {summary['webhook_endpoints']} webhook endpoints); "
                f"{result.current} already current; {len(result.unreadable)} unreadable."
            )
        if result.unreadable:
            raise CommandError(
                "No configured key decrypts: " + ", ".join(result.unreadable)
                + ". Add the key they were encrypted with to API_SECRET_ENCRYPTION_KEY (after the first) and run "
                "again; the others were re-encrypted."
            )
