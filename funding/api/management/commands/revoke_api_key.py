from django.core.management.base import BaseCommand, CommandError

from funding.api.models import ApiKey
from funding.api.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key at once (by its key id)."

    def add_arguments(self, parser):
        parser.add_argument("key_id")
        parser.add_argument("--reason", default="")

    def handle(self, *args, key_id: str, reason: str, **options):
        key = ApiKey.objects.filter(key_id=key_id).first()
        if key is None:
            raise CommandError(f"No API key {key_id!r}.")
        api_key_revoke(key=key, actor_label="revoke_api_key", reason=reason)
        self.stdout.write(f"Revoked {key_id} of {key.company.code}")
