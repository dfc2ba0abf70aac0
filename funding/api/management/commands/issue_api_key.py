import json

from django.core.management.base import BaseCommand, CommandError

from funding.api.services import api_key_issue
from funding.errors import EngineError
from funding.models import Company


class Command(BaseCommand):
    help = "Issue a new API key for company CODE; the secret is printed once and cannot be shown again."

    def add_arguments(self, parser):
        parser.add_argument("code")
        parser.add_argument("--json", action="store_true", help="print only a JSON object")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="if the company already has two active keys, revoke the oldest",
        )
        parser.add_argument("--label", default="")

    def handle(self, *args, code, json: bool = False, rotate: bool = False, label: str = "", **options):
        company = Company.objects.filter(code=code).first()
        if company is None:
            raise CommandError(f"No company with code {code!r}.")
        try:
            issued = api_key_issue(
                company=company, actor_label="issue_api_key", revoke_oldest_if_full=rotate, label=label
            )
        except EngineError as exc:
            raise CommandError(f"{exc.message} (use --rotate to revoke the oldest key)") from exc
        if json:
            self.stdout.write(
                _json_dumps(
                    {
                        "company": company.code,
                        "api_key": issued.key_id,
                        "api_secret": issued.secret,
                        "revoked": issued.revoked_key_ids,
                    }
                )
            )
            return
        self.stdout.write(f"Issued API key for {company.code}: key id {issued.key_id}")
        self.stdout.write(f"Secret (shown only now, store it safely): {issued.secret}")
        for key_id in issued.revoked_key_ids:
            self.stdout.write(f"Revoked the oldest key {key_id}")


def _json_dumps(data) -> str:
    return json.dumps(data)
