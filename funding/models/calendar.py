"""The business date and the stored business-day calendar."""

from django.conf import settings
from django.db import models
from django.db.models import Q


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
    """A year counts as published only when its holidays and make-up days are known; no guessing beyond."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    published = models.BooleanField(default=False)
    source = models.CharField(max_length=100)
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


