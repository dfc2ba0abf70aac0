"""The companies' bank statements (with upload), and what end of day records about overdue advances."""

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
from funding.models import AgingSnapshot, BankStatementImport, BankStatementLine, PenaltyAccrual
from funding.services.bank_statements import StatementFileError, bank_statement_import, import_summary

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
            name="funding_bankstatementimport_upload",
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
                return redirect("admin:funding_bankstatementimport_change", result.statement.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Upload a bank statement",
        }
        return TemplateResponse(request, "admin/funding/bankstatementimport/upload.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Bank statement imports (upload: ./upload/)"}
        return super().changelist_view(request, extra_context)


@admin.register(PenaltyAccrual)
class PenaltyAccrualAdmin(ReadOnlyAdmin):
    list_display = ["advance", "accrual_date", "days", "base", "penalty_rate", "amount_exact", "posted"]
    list_filter = ["accrual_date"]


@admin.register(AgingSnapshot)
class AgingSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["business_date", "company", "bucket", "advances", "outstanding"]
    list_filter = ["business_date", "bucket"]
