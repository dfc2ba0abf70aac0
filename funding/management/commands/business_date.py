"""Print the engine's current business date (ISO 8601); `--initialize DATE` sets it once, at installation.

Exits non-zero when none has been set. Afterwards only end of day (`close_business_day`) moves it.
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from funding.errors import CalendarUnavailable
from funding.models import BusinessDay
from funding.services.calendar import business_date_initialize, is_business_day


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = "Print the current business date (YYYY-MM-DD); --initialize DATE sets it once on a new installation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--initialize", metavar="YYYY-MM-DD",
                            help="set the first business date (a business day of a published calendar year); "
                                 "refused once a business date exists")

    def handle(self, *args, initialize: str | None = None, **options) -> None:
        if initialize:
            wanted = _date(initialize)
            existing = BusinessDay.objects.first()
            if existing is not None and existing.current != wanted:
                raise CommandError(
                    f"The business date is already {existing.current.isoformat()}; only end of day moves it."
                )
            try:
                working = is_business_day(wanted)
            except CalendarUnavailable as exc:
                raise CommandError(f"{wanted.year} has no published calendar: run `manage.py seed_calendar` "
                                   f"first ({exc})") from exc
            if not working:
                raise CommandError(f"{wanted.isoformat()} is not a business day in the published calendar.")
            business_date_initialize(current=wanted)
        day = BusinessDay.objects.first()
        if day is None:
            raise CommandError(
                "The business date has not been set. Run `manage.py business_date --initialize YYYY-MM-DD` once "
                "(after `manage.py seed_calendar`), or `manage.py seed_demo` for demo data."
            )
        self.stdout.write(day.current.isoformat())
        if day.closing:
            self.stderr.write("note: end of day is running for this date; new advances are refused")
