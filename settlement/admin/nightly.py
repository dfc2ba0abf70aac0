"""Nightly job runs (with staff rerun of a failed run) and the repayments they collected."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.console.errors import PermissionDenied as ConsolePermissionDenied
from funding.console.roles import require_permission
from settlement.models import JobRun, Repayment, RepaymentAllocation
from settlement.services.nightly import JobError, job_run_resume


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = [
        "job",
        "business_date",
        "sequence",
        "status",
        "step",
        "chunks_done",
        "attempts",
        "started_at",
        "finished_at",
    ]
    list_filter = ["job", "status"]
    readonly_fields = [
        "job",
        "business_date",
        "sequence",
        "status",
        "next_business_date",
        "step",
        "cursor",
        "counts",
        "amounts",
        "chunks_done",
        "attempts",
        "error",
        "started_at",
        "finished_at",
    ]
    actions = ["rerun_failed"]

    @admin.action(description="Rerun the selected failed runs (resumes where they stopped)")
    def rerun_failed(self, request: HttpRequest, queryset) -> None:
        try:
            require_permission(request.user, "rerun_job")
        except ConsolePermissionDenied as exc:
            raise PermissionDenied from exc
        for run in queryset.order_by("id"):
            try:
                messages.success(request, job_run_resume(run_id=run.pk, actor=request.user))
            except JobError as exc:
                messages.error(request, f"{run}: {exc}")


class RepaymentAllocationInline(ReadOnlyInline):
    model = RepaymentAllocation
    fields = ["advance", "penalty", "fee", "principal", "settles_advance"]


@admin.register(Repayment)
class RepaymentAdmin(ReadOnlyAdmin):
    list_display = ["reference", "company", "business_date", "source", "amount", "penalty", "fee", "principal"]
    list_filter = ["business_date", "source"]
    search_fields = ["reference", "company__code"]
    readonly_fields = [
        "reference",
        "company",
        "business_date",
        "source",
        "currency",
        "amount",
        "penalty",
        "fee",
        "principal",
        "journal",
        "job_run",
        "created_at",
    ]
    inlines = [RepaymentAllocationInline]
