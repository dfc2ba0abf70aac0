import json

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError
from settlement.management.commands._nightly import terminal_progress
from settlement.services.nightly import job_run_as_json, job_run_summary, repayments_collect_run


class Command(BaseCommand):
    help = "Collect what is due from the companies' settlement accounts for the current business date."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=None, help="companies per transaction")
        parser.add_argument("--json", action="store_true", help="print the run as one JSON object")

    def handle(self, *args, **options):
        progress, close = terminal_progress(self.stdout)
        try:
            outcome = repayments_collect_run(chunk_size=options["chunk_size"], progress=progress)
        except EngineError as exc:
            raise CommandError(f"collect_repayments failed: {exc.message}") from exc
        except Exception as exc:
            raise CommandError(f"collect_repayments failed: {type(exc).__name__}: {exc}") from exc
        finally:
            close()
        if options["json"]:
            self.stdout.write(json.dumps(job_run_as_json(outcome.run, changed=outcome.changed)))
            return
        self.stdout.write(job_run_summary(outcome.run))
