"""Runs of the integrity check (check_integrity, and the end-of-day chain's `integrity` step)."""

from django.db import models


class IntegrityCheckRun(models.Model):
    """One run of every integrity check. `problems` lists each failure found (empty when it passed);
    `figures` keeps what was compared, so a passed run shows what it proved."""

    business_date = models.DateField(null=True, blank=True)
    job_run = models.OneToOneField(
        "settlement.JobRun", null=True, blank=True, on_delete=models.PROTECT, related_name="integrity_check"
    )
    triggered_by = models.CharField(max_length=150)
    passed = models.BooleanField()
    problems = models.JSONField(default=list, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["-finished_at"], name="settlement_integrity_latest")]

    def __str__(self) -> str:
        return f"integrity check {self.finished_at:%Y-%m-%d %H:%M} {'passed' if self.passed else 'FAILED'}"
