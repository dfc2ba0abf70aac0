"""calendar_approve YEAR --user USERNAME: publish the pending proposal of YEAR (contract 2.3, four eyes).

The proposer can never approve their own proposal: that exits non-zero with four_eyes_violation.
"""

from django.core.management.base import BaseCommand, CommandError

from funding.errors import EngineError, FourEyesViolation
from funding.management.commands._staff import refusal, staff_member
from funding.selectors import calendar_pending_year
from funding.services.calendar_publication import calendar_change_approve, calendar_year_summary


class Command(BaseCommand):
    help = "Publish the pending calendar proposal of YEAR; must be another staff member than its proposer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("year", type=int)
        parser.add_argument("--user", required=True, help="the approving staff member (approver permission)")
        parser.add_argument("--reason", default="")

    def handle(self, *args, year: int, user: str, reason: str, **options) -> None:
        request = calendar_pending_year(year=year)
        if request is None:
            raise CommandError(f"no_pending_proposal: no proposal of the {year} calendar is waiting for approval")
        try:
            if request.maker.get_username() == user:
                # Before the permission check: the proposer learns why, whatever their role.
                raise FourEyesViolation("The proposer of a calendar change cannot approve it.")
            checker = staff_member(user, "approve_calendar")
            request = calendar_change_approve(request=request, checker=checker, reason=reason)
        except EngineError as exc:
            raise refusal(exc, self.stderr) from exc
        summary = calendar_year_summary(year=year, exceptions=request.days)
        self.stdout.write(
            f"calendar {year} published from #{request.pk} (proposed by {request.maker.get_username()}, approved "
            f"by {user}): {summary.holidays} holidays, {summary.workdays} make-up workdays, "
            f"{summary.business_days} business days"
        )
