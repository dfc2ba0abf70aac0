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
from funding.admin_actions import OptionalReasonForm, ReasonForm, action_with_form
from funding.console.admin_permissions import ConsoleActionPermissions
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError, ValidationFailed
from settlement.models import (
    Channel,
    ChannelStatement,
    ExceptionStatus,
    IntegrityCheckRun,
    ReconciliationException,
    ReconciliationItem,
    ReconClass,
)
from settlement.services.reconciliation import (
    STATEMENT_MAX_BYTES,
    channel_statement_file_import,
    reconciliation_report,
)
from settlement.services.reconciliation_queue import (
    reconciliation_exception_resolve,
    reconciliation_exception_write_off_approve,
    reconciliation_exception_write_off_propose,
    reconciliation_exception_write_off_reject,
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
            .annotate(
                n_exceptions=Count(
                    "items",
                    filter=Q(items__exceptions__status=ExceptionStatus.OPEN)
                    & ~Q(items__classification=ReconClass.MATCHED),
                )
            )
        )

    @admin.display(description="open exceptions", ordering="n_exceptions")
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
            upload = form.cleaned_data["file"]
            try:
                if upload.size > STATEMENT_MAX_BYTES:
                    raise ValidationFailed(details={"file": [f"larger than {STATEMENT_MAX_BYTES} bytes"]})
                # The command's import: the same checks (UTF-8, NUL bytes, serials of another channel refuse
                # the whole file), so a file uploaded under the wrong channel opens no exception there.
                statement = channel_statement_file_import(
                    channel_code=form.cleaned_data["channel"].code,
                    statement_date=form.cleaned_data["statement_date"],
                    data=upload.read(),
                    actor_label=request.user.get_username(),
                ).statement
            except EngineError as exc:
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


class OpenFilter(admin.SimpleListFilter):
    """The queue shows open exceptions unless staff ask for the history."""

    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open (the queue)"), ("resolved", "Resolved"), ("written_off", "Written off"),
                ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    """The reconciliation work queue. Resolving needs a reason; a write-off is proposed by one staff member and
    approved by another (four eyes), and posts the difference to the reconciliation-difference account."""

    list_display = [
        "id",
        "source",
        "classification",
        "channel_code",
        "value_date",
        "reference",
        "statement_amount",
        "ledger_amount",
        "adjustment",
        "status",
        "write_off_proposed_by",
        "opened_at",
    ]
    list_filter = [OpenFilter, "source", "classification", "channel_code", "value_date"]
    list_select_related = ["write_off_proposed_by"]
    search_fields = ["reference", "key"]
    actions = ["resolve", "propose_write_off", "approve_write_off", "reject_write_off"]

    def has_change_permission(self, request, obj=None):
        # Only to offer the actions on the list; every field stays read-only.
        return obj is None and (
            self.has_reconcile_statement_permission(request)
            or self.has_propose_write_off_permission(request)
            or self.has_approve_write_off_permission(request)
        )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Resolve with a reason", permissions=["reconcile_statement"])
    def resolve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Resolve reconciliation exceptions", form_class=ReasonForm,
            done="Exceptions resolved", permission="reconcile_statement",
            perform=lambda exc, data: reconciliation_exception_resolve(
                exception_id=exc.pk, actor=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Propose a write-off (maker)", permissions=["propose_write_off"])
    def propose_write_off(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Propose writing off the difference", form_class=ReasonForm,
            done="Write-offs proposed", permission="propose_write_off",
            perform=lambda exc, data: reconciliation_exception_write_off_propose(
                exception_id=exc.pk, maker=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Approve the write-off (never the proposer)", permissions=["approve_write_off"])
    def approve_write_off(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve the write-off", form_class=OptionalReasonForm,
            done="Exceptions written off", permission="approve_write_off",
            perform=lambda exc, data: reconciliation_exception_write_off_approve(
                exception_id=exc.pk, checker=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Reject the write-off (never the proposer)", permissions=["approve_write_off"])
    def reject_write_off(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject the write-off", form_class=ReasonForm,
            done="Write-offs rejected", permission="approve_write_off",
            perform=lambda exc, data: reconciliation_exception_write_off_reject(
                exception_id=exc.pk, checker=request.user, reason=data["reason"]
            ),
        )


@admin.register(IntegrityCheckRun)
class IntegrityCheckRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "finished_at", "business_date", "triggered_by", "passed", "problem_count"]
    list_filter = ["passed", "triggered_by"]
    readonly_fields = ["business_date", "job_run", "triggered_by", "passed", "problems", "figures",
                       "started_at", "finished_at"]

    @admin.display(description="problems")
    def problem_count(self, obj):
        return len(obj.problems or [])
