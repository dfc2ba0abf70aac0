"""Staff views of the nightly work: statement imports (with upload), job runs, repayments, penalties, aging.

Imported from SettlementConfig.ready(), so that settlement/admin.py (payouts, channels) stays separate.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.console.errors import PermissionDenied as ConsolePermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from settlement.models import (
    AgingSnapshot,
    BankStatementImport,
    BankStatementLine,
    JobRun,
    PenaltyAccrual,
    Repayment,
    RepaymentAllocation,
)
from settlement.services.bank_statements import StatementFileError, bank_statement_import, import_summary
from settlement.services.end_of_day import JobError, job_run_resume

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class StatementUploadForm(forms.Form):
    file = forms.FileField(label="Statement file (CSV)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 20 MB.")
        return upload


class BankStatementLineInline(ReadOnlyInline):
    model = BankStatementLine
    fields = [
        "line_no",
        "reference",
        "value_date",
        "account_no",
        "direction",
        "amount",
        "counterparty",
        "memo",
    ]


@admin.register(BankStatementImport)
class BankStatementImportAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "filename",
        "imported_by",
        "lines_imported",
        "lines_skipped",
        "lines_rejected",
        "credits_total",
        "debits_total",
    ]
    readonly_fields = [
        "filename",
        "sha256",
        "imported_by",
        "lines_total",
        "lines_imported",
        "lines_skipped",
        "lines_rejected",
        "credits_total",
        "debits_total",
        "rejections",
        "started_at",
        "finished_at",
    ]
    inlines = [BankStatementLineInline]

    def get_urls(self):
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="settlement_bankstatementimport_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        try:
            require_permission(request.user, "upload_statement")
        except ConsolePermissionDenied as exc:
            raise PermissionDenied from exc
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = bank_statement_import(
                    stream=upload, filename=upload.name, imported_by=request.user.get_username()
                )
            except (StatementFileError, EngineError) as exc:
                form.add_error("file", str(exc))
            else:
                level = messages.SUCCESS if result.ok else messages.WARNING
                messages.add_message(request, level, import_summary(result))
                for rejection in result.rejections[:50]:
                    messages.warning(request, f"line {rejection['line']}: {rejection['error']}")
                return redirect("admin:settlement_bankstatementimport_change", result.statement.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Upload a bank statement",
        }
        return TemplateResponse(request, "admin/settlement/bankstatementimport/upload.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Bank statement imports (upload: ./upload/)"}
        return super().changelist_view(request, extra_context)


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
    list_display = ["reference", "company", "business_date", "amount", "penalty", "fee", "principal"]
    list_filter = ["business_date"]
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


@admin.register(PenaltyAccrual)
class PenaltyAccrualAdmin(ReadOnlyAdmin):
    list_display = ["advance", "accrual_date", "days", "base", "penalty_rate", "amount_exact", "posted"]
    list_filter = ["accrual_date"]


@admin.register(AgingSnapshot)
class AgingSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["business_date", "company", "bucket", "advances", "outstanding"]
    list_filter = ["business_date", "bucket"]
