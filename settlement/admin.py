"""Staff screens for disbursement: channels and error maps, payouts and attempts, manual reviews (four eyes),
statements and reconciliation exceptions. Writes go through the services; the admin stays thin."""

from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.console.admin_permissions import ConsoleActionPermissions, action_refused
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from settlement.models import (
    Channel,
    ChannelErrorMapping,
    ChannelStatement,
    ManualReview,
    ManualReviewStatus,
    Payout,
    PayoutAttempt,
    ReconciliationItem,
    ReconClass,
    SimulatedChannelTransfer,
    StatementSource,
)
from settlement.services.channels import channel_success_rates
from settlement.services.reconciliation import (
    reconciliation_report,
    statement_fetch_and_import,
    statement_import,
    statement_rows_from_csv,
)
from settlement.services.reviews import manual_review_approve, manual_review_propose, manual_review_reject


def _alert_open_reviews(request) -> None:
    open_count = ManualReview.objects.exclude(status=ManualReviewStatus.RESOLVED).count()
    if open_count:
        url = reverse("admin:settlement_manualreview_changelist")
        messages.warning(request, f"{open_count} payout(s) need manual review: {url}")


class ErrorMappingInline(admin.TabularInline):
    model = ChannelErrorMapping
    extra = 0


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = [
            "code",
            "name",
            "enabled",
            "healthy",
            "fee_fixed",
            "fee_bps",
            "min_amount",
            "max_amount",
            "service_start",
            "service_end",
            "runs_on_non_business_days",
            "bank_codes",
            "adapter",
            "adapter_settings",
        ]

    def clean_adapter(self):
        from django.utils.module_loading import import_string

        from settlement.adapters.base import ChannelAdapter

        path_ = self.cleaned_data["adapter"]
        try:
            cls = import_string(path_)
        except ImportError as exc:
            raise ValidationError(f"Cannot import {path_}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
            raise ValidationError(f"{path_} is not a ChannelAdapter subclass.")
        return path_

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("service_start"), cleaned.get("service_end")
        if (start is None) != (end is None):
            raise ValidationError("Give both service start and end, or neither (7x24).")
        return cleaned


@admin.register(Channel)
class ChannelAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    form = ChannelForm
    list_display = [
        "code",
        "name",
        "enabled",
        "healthy",
        "fee_fixed",
        "fee_bps",
        "min_amount",
        "max_amount",
        "service_start",
        "service_end",
        "runs_on_non_business_days",
        "success_rate",
        "in_flight",
    ]
    list_editable = ["enabled", "healthy"]
    inlines = [ErrorMappingInline]
    actions = ["import_statement_today", "import_statement_yesterday"]

    def changelist_view(self, request, extra_context=None):
        self._rates = channel_success_rates()
        _alert_open_reviews(request)
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(live=Count("attempts", filter=Q(attempts__status__in=["processing", "unknown"])))
        )

    @admin.display(description="success rate (window)")
    def success_rate(self, obj):
        rate = getattr(self, "_rates", {}).get(obj.pk)
        if rate is None or rate.rate is None:
            return "-"
        return f"{rate.rate:.1%} of {rate.samples}"

    @admin.display(description="unresolved attempts", ordering="live")
    def in_flight(self, obj):
        return obj.live

    def _import(self, request, queryset, day: date):
        if action_refused(self, request, "upload_statement"):
            return
        for channel in queryset:
            try:
                statement = statement_fetch_and_import(channel=channel, statement_date=day)
                self.message_user(request, f"{channel.code} {day}: {statement.row_count} rows reconciled")
            except Exception as exc:  # noqa: BLE001 - shown to staff
                self.message_user(request, f"{channel.code}: {exc}", level=messages.ERROR)

    @admin.action(description="Import and reconcile today's statement", permissions=["upload_statement"])
    def import_statement_today(self, request, queryset):
        self._import(request, queryset, timezone.localdate())

    @admin.action(description="Import and reconcile yesterday's statement", permissions=["upload_statement"])
    def import_statement_yesterday(self, request, queryset):
        self._import(request, queryset, timezone.localdate() - timedelta(days=1))


@admin.register(ChannelErrorMapping)
class ChannelErrorMappingAdmin(admin.ModelAdmin):
    list_display = ["channel", "channel_code", "unified_code", "decision", "description"]
    list_filter = ["channel", "decision"]
    search_fields = ["channel_code", "unified_code"]


class AttemptInline(ReadOnlyInline):
    model = PayoutAttempt
    fields = [
        "number",
        "serial",
        "channel",
        "status",
        "failure_code",
        "channel_code",
        "decision",
        "created_at",
        "resolved_at",
        "resolved_by",
        "query_count",
        "last_query",
        "next_query_at",
        "routing",
    ]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "advance",
        "sequence",
        "amount",
        "status",
        "attempt_count",
        "failure_code",
        "updated_at",
    ]
    list_filter = ["status", "failure_code"]
    search_fields = ["public_id", "external_id", "advance__public_id"]
    inlines = [AttemptInline]

    def changelist_view(self, request, extra_context=None):
        _alert_open_reviews(request)
        return super().changelist_view(request, extra_context)


@admin.register(PayoutAttempt)
class PayoutAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "channel",
        "status",
        "amount",
        "fee",
        "failure_code",
        "channel_code",
        "created_at",
        "resolved_by",
        "query_count",
        "next_query_at",
    ]
    list_filter = ["status", "channel", "resolved_by", "decision"]
    search_fields = ["serial"]


class ManualReviewForm(forms.ModelForm):
    """The only way staff change a review: propose (maker) or approve/reject (a different checker)."""

    ACTIONS = [
        ("propose_succeeded", "Propose: the channel paid"),
        ("propose_failed", "Propose: the channel did not pay"),
        ("approve", "Approve the proposal (checker)"),
        ("reject", "Reject the proposal (checker)"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    class Meta:
        model = ManualReview
        fields: list[str] = []

    def clean(self):
        cleaned = super().clean()
        action, reason, user = cleaned.get("action"), cleaned.get("reason", ""), self.request.user
        try:
            require_permission(user, "resolve_manual_review")
            if action in ("propose_succeeded", "propose_failed"):
                manual_review_propose(
                    review_id=self.instance.pk, outcome=action.split("_", 1)[1], reason=reason, maker=user
                )
            elif action == "approve":
                manual_review_approve(review_id=self.instance.pk, checker=user, reason=reason)
            elif action == "reject":
                manual_review_reject(review_id=self.instance.pk, checker=user, reason=reason)
        except PermissionDenied as exc:
            raise ValidationError(f"{exc.message} ({exc.code}: console.resolve_manual_review)") from exc
        except EngineError as exc:
            raise ValidationError(f"{exc.message} {exc.details or ''}".strip()) from exc
        return cleaned


@admin.register(ManualReview)
class ManualReviewAdmin(admin.ModelAdmin):
    form = ManualReviewForm
    list_display = [
        "attempt",
        "payout",
        "status",
        "opened_at",
        "opened_reason",
        "proposed_outcome",
        "proposed_by",
        "approved_by",
        "resolution",
    ]
    list_filter = ["status"]
    readonly_fields = [
        "attempt",
        "payout",
        "status",
        "opened_at",
        "opened_reason",
        "proposed_outcome",
        "proposed_by",
        "proposal_reason",
        "proposed_at",
        "approved_by",
        "resolved_at",
        "resolution",
        "resolved_by_label",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def save_model(self, request, obj, form, change):
        """The service already did the work (in clean); saving the stale instance would undo it."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
    ]
    list_filter = ["classification", "statement__channel", "statement__statement_date"]
    search_fields = ["serial"]


@admin.register(SimulatedChannelTransfer)
class SimulatedChannelTransferAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "channel_code",
        "amount",
        "status",
        "channel_code_result",
        "value_date",
        "received_at",
    ]
    list_filter = ["channel_code", "status", "value_date"]
    search_fields = ["serial"]
