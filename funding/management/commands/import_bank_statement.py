import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError
from funding.management.commands._staff import staff_member
from funding.services.bank_statements import StatementFileError, bank_statement_import, import_as_json, import_summary


class Command(BaseCommand):
    help = "Import the bank's statement file (CSV, contract 2.1). Exits non-zero if any line was rejected."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument(
            "--user",
            help="the staff member importing (needs the statement upload permission, as in the console); recorded "
            "on the import instead of the command's name",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"import_bank_statement failed: no such file {path}")
        imported_by = "import_bank_statement"
        if options["user"]:
            imported_by = staff_member(options["user"], "upload_statement").get_username()
        try:
            with path.open("rb") as stream:
                result = bank_statement_import(stream=stream, filename=path.name, imported_by=imported_by)
        except (StatementFileError, EngineError) as exc:
            raise CommandError(f"import_bank_statement failed: {exc}") from exc
        for rejection in result.rejections:
            self.stderr.write(f"line {rejection['line']}: {rejection['error']}")
        if options["json"]:
            self.stdout.write(json.dumps(import_as_json(result)))
        else:
            self.stdout.write(import_summary(result))
        if not result.ok:
            raise CommandError(f"{len(result.rejections)} line(s) rejected")
