"""Store the mainland-China business-day calendar from the `chinese-calendar` package in the database.

Idempotent: re-running rewrites the package's days and keeps days staff edited (source 'staff').
Years the package does not cover stay unpublished, and advances maturing in them are refused.
"""

from importlib.metadata import version

from django.core.management.base import BaseCommand, CommandError

from funding.models import CalendarYear
from funding.services.calendar import calendar_seed_year, calendar_year_published_by_staff


def covered_years() -> list[int]:
    import chinese_calendar

    years = {day.year for day in chinese_calendar.holidays} | {day.year for day in chinese_calendar.workdays}
    return sorted(years)


class Command(BaseCommand):
    help = "Seed the business-day calendar from chinese-calendar (all years it covers, or --year ...)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--year", type=int, action="append", dest="years",
                            help="seed only this year (repeatable); default: every year the package covers")

    def handle(self, *args, years: list[int] | None = None, **options) -> None:
        package = f"chinese-calendar {version('chinese-calendar')}"
        covered = covered_years()
        if not covered:
            raise CommandError(f"{package} covers no year")
        wanted = sorted(set(years)) if years else covered
        unpublished = []
        for year in wanted:
            if calendar_year_published_by_staff(year=year):
                self.stdout.write(f"{year}: kept as published from the State Council's notice (four eyes)")
                continue
            days = calendar_seed_year(year=year)
            if days:
                self.stdout.write(f"{year}: {days} days stored from {package}")
            else:
                unpublished.append(year)
        # The year after the last covered one is the one that will bite first: say so explicitly.
        following = covered[-1] + 1
        if not years and not CalendarYear.objects.filter(year=following, published=True).exists():
            unpublished.append(following)
        for year in unpublished:
            self.stdout.write(self.style.WARNING(
                f"{year}: not published by {package}; next-business-day dates in {year} cannot be "
                f"determined and advances maturing there are refused (calendar_unavailable)"
            ))
