import json
from datetime import date, timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from settlement.services.reconciliation import reconciliation_report, statements_import_all


class Command(BaseCommand):
    help = "Print the daily channel reconciliation report (JSON). --import fetches the statements first."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD, default yesterday")
        parser.add_argument("--import", action="store_true", dest="do_import")

    def handle(self, *args, date=None, do_import=False, **options):
        day = _parse(date) if date else timezone.localdate() - timedelta(days=1)
        if do_import:
            statements_import_all(statement_date=day)
        self.stdout.write(json.dumps(reconciliation_report(statement_date=day), indent=2))


def _parse(value: str) -> date:
    return date.fromisoformat(value)
