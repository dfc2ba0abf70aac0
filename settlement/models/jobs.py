"""Runs of the nightly jobs, with their progress cursor."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from config.fsm import transition_sources

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class JobName(models.TextChoices):
    COLLECT_REPAYMENTS = "collect_repayments", "Collect repayments"
    CLOSE_BUSINESS_DAY = "close_business_day", "Close business day"


class JobRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class JobRun(FSMModelMixin, models.Model):
    """One run of a job for one business date. A killed run is resumed from (`step`, `cursor`).

    The cursor is moved in the same transaction as the chunk's work, so a chunk is done exactly once.
    """

    job = models.CharField(max_length=32, choices=JobName.choices)
    business_date = models.DateField()
    sequence = models.PositiveSmallIntegerField(default=1)
    status = FSMField(max_length=16, choices=JobRunStatus.choices, default=JobRunStatus.RUNNING, protected=True)
    # Fixed when the run starts, so that a resumed run ends on the same date even if the calendar was edited.
    next_business_date = models.DateField(null=True, blank=True)
    step = models.CharField(max_length=32, blank=True, default="")
    cursor = models.BigIntegerField(default=0, help_text="last company id done in the current step")
    counts = models.JSONField(default=dict, blank=True)
    amounts = models.JSONField(default=dict, blank=True)
    chunks_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1, help_text="starts, including resumptions")
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-business_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "business_date", "sequence"], name="settlement_jobrun_sequence"
            ),
            # A business date is closed exactly once.
            models.UniqueConstraint(
                fields=["job", "business_date"],
                condition=Q(job="close_business_day"),
                name="settlement_close_once_per_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.business_date} #{self.sequence} {self.status}"

    @transition(field=status, source=JobRunStatus.RUNNING, target=JobRunStatus.SUCCEEDED)
    def succeed(self) -> None:
        pass

    @transition(field=status, source=JobRunStatus.RUNNING, target=JobRunStatus.FAILED)
    def fail(self, exc: BaseException) -> None:
        """The one record of a failure: the exception as `error`, and when the run stopped."""
        self.error = f"{type(exc).__name__}: {exc}"[:4000]
        self.finished_at = timezone.now()

    @transition(field=status, source=[JobRunStatus.RUNNING, JobRunStatus.FAILED], target=JobRunStatus.RUNNING)
    def resume(self) -> None:
        """Start again where it stopped: after a failure, or after the process running it was killed. One
        more start; the last failure's error and end are cleared."""
        self.attempts += 1
        self.error = ""
        self.finished_at = None


# The runs a failure may be recorded on (JobRun.fail's sources).
JOB_RUN_FAILABLE_STATES = transition_sources(JobRun.fail, wildcards=False)
