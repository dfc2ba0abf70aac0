"""`import_channel_statement CHANNEL DATE FILE [--json]` (contract 2.2).

Resolves unknown or processing attempts the statement proves, books returns (退汇) of succeeded payouts, and
records every line that matches nothing or disagrees as a reconciliation exception. Importing the same file
again changes nothing. Exits non-zero, importing nothing, if a line is malformed or refers to another channel.
"""

import json
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError
from settlement.services.reconciliation import STATEMENT_MAX_BYTES, channel_statement_file_import

MAX_FILE_BYTES = STATEMENT_MAX_BYTES


class Command(BaseCommand):
    help = "Import a payout channel's statement for one value date (CSV serial,amount,status[,code]; contract 2.2)."

    def add_arguments(self, parser):
        parser.add_argument("channel", help="the channel's code, e.g. HVPS")
        parser.add_argument("date", help="the statement's value date, YYYY-MM-DD")
        parser.add_argument("file")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the summary as one JSON object")

    def handle(self, *args, channel: str, date: str, file: str, as_json: bool = False, **options):
        statement_date = _parse_date(date)
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"import_channel_statement failed: no such file {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"import_channel_statement failed: {path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            result = channel_statement_file_import(
                channel_code=channel,
                statement_date=statement_date,
                data=path.read_bytes(),
                actor_label="import_channel_statement",
            )
        except EngineError as exc:
            problems = [f"{where}: {'; '.join(str(p) for p in found)}" for where, found in (exc.details or {}).items()]
            for problem in problems:
                self.stderr.write(problem)
            shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
            raise CommandError(
                f"{exc.code}: import_channel_statement failed ({shown or exc.message}). Nothing was imported."
            ) from exc
        summary = result.as_dict()
        if as_json:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            f"{summary['channel']} {summary['date']}: {summary['lines']} lines, {summary['matched']} matched, "
            f"{summary['resolved']} resolved, {summary['returned']} returned ({summary['returned_amount']}), "
            f"{summary['exceptions']} exceptions"
        )


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"import_channel_statement failed: {value!r} is not a date (YYYY-MM-DD)") from exc
