import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError
from settlement.management.commands._nightly import terminal_progress
from settlement.services.nightly import business_day_close, job_run_as_json, job_run_summary


class Command(BaseCommand):
    help = (
        "Run the end-of-day chain for the current business date and open the next business day. "
        "Resumes an interrupted close. With --date, a date already closed is a no-op."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            type=date.fromisoformat,
            default=None,
            help="the business date meant to be closed (YYYY-MM-DD)",
        )
        parser.add_argument("--chunk-size", type=int, default=None, help="companies per transaction")
        parser.add_argument("--json", action="store_true", help="print the run as one JSON object")

    def handle(self, *args, **options):
        progress, close = terminal_progress(self.stdout)
        try:
            outcome = business_day_close(
                business_date=options["date"], chunk_size=options["chunk_size"], progress=progress
            )
        except EngineError as exc:
            raise CommandError(f"close_business_day failed: {exc.message}") from exc
        except Exception as exc:
            raise CommandError(f"close_business_day failed: {type(exc).__name__}: {exc}") from exc
        finally:
            close()
        if options["json"]:
            self.stdout.write(json.dumps(job_run_as_json(outcome.run, changed=outcome.changed)))
            return
        prefix = "" if outcome.changed else "already closed, nothing changed: "
        self.stdout.write(prefix + job_run_summary(outcome.run))
