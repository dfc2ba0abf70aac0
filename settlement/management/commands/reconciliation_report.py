import json
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from settlement.services.reconciliation import reconciliation_report, statements_import_all


class Command(BaseCommand):
    help = (
        "Print the daily channel reconciliation report (JSON). --import fetches the statements first. "
        "Exits non-zero when the day has exceptions, so a scheduler or monitoring notices them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD, default yesterday")
        parser.add_argument("--import", action="store_true", dest="do_import")

    def handle(self, *args, date=None, do_import=False, **options):
        day = _parse(date) if date else timezone.localdate() - timedelta(days=1)
        if do_import:
            statements_import_all(statement_date=day)
        report = reconciliation_report(statement_date=day)
        self.stdout.write(json.dumps(report, indent=2))
        if report["exceptions"]:
            raise CommandError(
                f"reconciliation_report {day.isoformat()}: {len(report['exceptions'])} exception(s) to work"
            )


def _parse(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"reconciliation_report: --date {value!r} is not a date (YYYY-MM-DD)") from None
