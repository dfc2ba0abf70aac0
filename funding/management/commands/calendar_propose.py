"""calendar_propose YEAR FILE --user USERNAME: propose publishing a calendar year (contract 2.3, four eyes).

The file is the State Council's notice as CSV (header `date,kind`; kind holiday|workday). Nothing is
published until a different staff member runs calendar_approve (or approves it in the staff console).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError
from funding.management.commands._staff import refusal, staff_member
from funding.services.calendar_publication import calendar_year_propose, calendar_year_summary


class Command(BaseCommand):
    help = "Propose a calendar year from its CSV file (date,kind); a second staff member publishes it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("year", type=int)
        parser.add_argument("file")
        parser.add_argument("--user", required=True, help="the proposing staff member (calendar permission)")
        parser.add_argument("--reason", default="", help="e.g. the notice's reference (国办发明电…)")
        parser.add_argument("--replace", action="store_true",
                            help="withdraw a pending proposal of the year and propose this file instead")

    def handle(self, *args, year: int, file: str, user: str, reason: str, replace: bool, **options) -> None:
        maker = staff_member(user, "propose_calendar")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no_such_file: {path}")
        try:
            request = calendar_year_propose(year=year, content=path.read_bytes(), file_name=path.name, maker=maker,
                                            reason=reason, replace=replace)
        except EngineError as exc:
            raise refusal(exc, self.stderr) from exc
        summary = calendar_year_summary(year=year, exceptions=request.days)
        self.stdout.write(
            f"calendar {year} proposed as #{request.pk} by {user}: {summary.holidays} holidays, "
            f"{summary.workdays} make-up workdays, {summary.business_days} business days "
            f"(sha256 {request.file_sha256[:16]}); publish with: calendar_approve {year} --user <another staff member>"
        )
