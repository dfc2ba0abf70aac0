"""The business date and the stored business-day calendar."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition


class BusinessDay(models.Model):
    """The engine's current business date: one row, moved only by the end-of-day job."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    current = models.DateField()
    closing = models.BooleanField(default=False, help_text="end of day is running: new advances are refused")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(singleton=True), name="funding_business_day_singleton")]

    def __str__(self) -> str:
        return self.current.isoformat()


class CalendarDayKind(models.TextChoices):
    WORKDAY = "workday", "Working day"
    WEEKEND = "weekend", "Weekend"
    HOLIDAY = "holiday", "Public holiday"
    MAKEUP_WORKDAY = "makeup_workday", "Make-up working day (调休)"


class CalendarYear(models.Model):
    """A year counts as published only when its holidays and make-up days are known; no guessing beyond.

    Published either from the `chinese-calendar` package (seed_calendar, at installation) or, for the years
    the package does not know yet, from the State Council's notice under four eyes (CalendarChangeRequest).
    """

    year = models.PositiveSmallIntegerField(primary_key=True)
    published = models.BooleanField(default=False)
    source = models.CharField(max_length=100)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return str(self.year)


class CalendarDay(models.Model):
    date = models.DateField(primary_key=True)
    kind = models.CharField(max_length=16, choices=CalendarDayKind.choices)
    is_business_day = models.BooleanField()
    name = models.CharField(max_length=100, blank=True, default="")
    source = models.CharField(max_length=100, default="chinese-calendar")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.kind}"




class CalendarChangeKind(models.TextChoices):
    PUBLISH_YEAR = "publish_year", "Publish a year (State Council notice)"
    CHANGE_DAY = "change_day", "Change one day"


class CalendarChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class CalendarChangeRequest(FSMModelMixin, models.Model):
    """A maker's proposal to publish a calendar year or to change one day; a different staff member applies it.

    `days`: for a year, the file's exceptions [{"date", "kind"}] (kind holiday|workday; every other day
    follows its weekday); for a day change, [{"date", "kind", "is_business_day", "name"}].
    """

    kind = models.CharField(max_length=16, choices=CalendarChangeKind.choices)
    year = models.PositiveSmallIntegerField()
    days = models.JSONField(default=list)
    file_name = models.CharField(max_length=200, blank=True, default="")
    file_sha256 = models.CharField(max_length=64, blank=True, default="")
    status = FSMField(default=CalendarChangeStatus.PENDING, choices=CalendarChangeStatus.choices, protected=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    maker_reason = models.TextField(blank=True, default="")
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checker_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(checker=F("maker")), name="funding_calendar_checker_is_not_maker"),
            models.UniqueConstraint(
                fields=["year"],
                condition=Q(status="pending", kind="publish_year"),
                name="funding_one_pending_calendar_year",
            ),
        ]

    def __str__(self) -> str:
        return f"calendar #{self.pk} {self.get_kind_display()} {self.year} ({self.status})"

    @transition(field=status, source=CalendarChangeStatus.PENDING, target=CalendarChangeStatus.APPROVED)
    def mark_approved(self) -> None:
        pass

    @transition(field=status, source=CalendarChangeStatus.PENDING, target=CalendarChangeStatus.REJECTED)
    def mark_rejected(self) -> None:
        pass

    @transition(field=status, source=CalendarChangeStatus.PENDING, target=CalendarChangeStatus.WITHDRAWN)
    def mark_withdrawn(self) -> None:
        pass
