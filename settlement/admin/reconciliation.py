"""Channel statements (upload or fetch) and the reconciliation exceptions they raise."""

from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from settlement.models import (
    Channel,
    ChannelStatement,
    ReconciliationItem,
    ReconClass,
    StatementSource,
)
from settlement.services.reconciliation import (
    reconciliation_report,
    statement_import,
    statement_rows_from_csv,
)


class StatementUploadForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=Channel.objects.all())
    statement_date = forms.DateField(help_text="YYYY-MM-DD")
    file = forms.FileField(help_text="CSV with header serial,amount,status[,code]")


class ItemInline(ReadOnlyInline):
    model = ReconciliationItem
    fields = [
        "serial",
        "classification",
        "statement_amount",
        "our_amount",
        "statement_status",
        "our_status",
        "statement_code",
        "resolved_attempt",
        "booked_return",
    ]


@admin.register(ChannelStatement)
class ChannelStatementAdmin(ReadOnlyAdmin):
    list_display = [
        "channel",
        "statement_date",
        "source",
        "row_count",
        "exceptions",
        "imported_at",
        "imported_by",
    ]
    list_filter = ["channel", "source", "statement_date"]
    inlines = [ItemInline]
    change_list_template = "admin/settlement/channelstatement/change_list.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_exceptions=Count("items", filter=~Q(items__classification=ReconClass.MATCHED)))
        )

    @admin.display(description="exceptions", ordering="n_exceptions")
    def exceptions(self, obj):
        return obj.n_exceptions

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="settlement_statement_upload"),
            path(
                "report/",
                self.admin_site.admin_view(self.report_view),
                name="settlement_reconciliation_report",
            ),
        ] + super().get_urls()

    def upload_view(self, request):
        try:
            require_permission(request.user, "upload_statement")
        except PermissionDenied:
            messages.error(request, "You may not import statements.")
            return redirect("admin:settlement_channelstatement_changelist")
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                rows = statement_rows_from_csv(text=form.cleaned_data["file"].read().decode("utf-8-sig"))
                statement = statement_import(
                    channel=form.cleaned_data["channel"],
                    statement_date=form.cleaned_data["statement_date"],
                    rows=rows,
                    source=StatementSource.CSV,
                    actor_label=request.user.get_username(),
                )
            except (EngineError, UnicodeDecodeError) as exc:
                details = getattr(exc, "details", None)
                form.add_error("file", f"{exc} {details or ''}".strip())
            else:
                self.message_user(request, f"{statement} imported: {statement.row_count} rows")
                return redirect("admin:settlement_channelstatement_change", statement.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a channel statement (CSV)",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/settlement/statement_upload.html", context)

    def report_view(self, request):
        try:
            day = date.fromisoformat(request.GET.get("date", ""))
        except ValueError:
            day = timezone.localdate() - timedelta(days=1)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reconciliation report {day}",
            "report": reconciliation_report(statement_date=day),
            "opts": self.model._meta,
            "classes": [c.value for c in ReconClass],
        }
        return TemplateResponse(request, "admin/settlement/reconciliation_report.html", context)


@admin.register(ReconciliationItem)
class ReconciliationItemAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "statement",
        "classification",
        "statement_amount",
        "our_amount",
        "statement_status",
        "our_status",
        "resolved_attempt",
        "booked_return",
    ]
    list_filter = ["classification", "statement__channel", "statement__statement_date"]
    search_fields = ["serial"]
