"""Print the engine's current business date (ISO 8601). Exits non-zero when none has been set."""

from django.core.management.base import BaseCommand, CommandError

from funding.models import BusinessDay


class Command(BaseCommand):
    help = "Print the current business date (YYYY-MM-DD). Fails when the business date has not been set."

    def handle(self, *args, **options) -> None:
        day = BusinessDay.objects.first()
        if day is None:
            raise CommandError(
                "The business date has not been set. Run `manage.py seed_demo` (demo) or set it once with "
                "funding.services.calendar.business_date_initialize; afterwards only end of day moves it."
            )
        self.stdout.write(day.current.isoformat())
        if day.closing:
            self.stderr.write("note: end of day is running for this date; new advances are refused")
