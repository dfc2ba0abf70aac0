import json

from django.core.management.base import BaseCommand, CommandError

from funding.models import BusinessDay
from settlement.services.integrity import integrity_check_run, integrity_summary


class Command(BaseCommand):
    help = (
        "Check the books: trial balance per currency, account totals against their entries, each company's "
        "credit line outstanding against its advance receivable, payouts in transit against unresolved "
        "attempts. Stores the run; exits non-zero if any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the run as one JSON object")

    def handle(self, *args, **options):
        try:
            run = integrity_check_run(
                triggered_by="check_integrity",
                business_date=BusinessDay.objects.values_list("current", flat=True).first(),
            )
        except Exception as exc:
            raise CommandError(f"check_integrity failed: {type(exc).__name__}: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({
                "id": run.pk,
                "passed": run.passed,
                "business_date": run.business_date.isoformat() if run.business_date else None,
                "checked_at": run.finished_at.isoformat(),
                "figures": run.figures,
                "problems": run.problems,
            }, sort_keys=True))
        else:
            self.stdout.write(integrity_summary(run))
        if not run.passed:
            details = "; ".join(p["message"] for p in run.problems)
            raise CommandError(f"check_integrity failed: {len(run.problems)} problem(s): {details}")
