"""Channels and their error maps (per-channel failure codes -> the engine's decision).

Every configuration change is a proposal (four eyes: settlement.services.channel_changes): saving a channel
or an error-map entry here proposes it, and a different staff member applies it from "Channel change
requests". Switching a channel off in an outage (unhealthy, or disabled) acts at once.
"""

from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils import timezone

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.admin_actions import OptionalReasonForm, ReasonForm, action_with_form, engine_error_text
from funding.console.admin_permissions import ConsoleActionPermissions, action_refused
from funding.errors import EngineError
from settlement.admin.payouts import alert_open_reviews
from settlement.models import (
    Channel,
    ChannelChangeKind,
    ChannelChangeRequest,
    ChannelErrorMapping,
)
from settlement.services.channel_changes import (
    CHANNEL_FIELDS,
    MAPPING_FIELDS,
    channel_change_approve,
    channel_change_propose,
    channel_change_reject,
    channel_mark_healthy,
    channel_switch_off,
)
from settlement.services.channels import channel_success_rates
from settlement.services.reconciliation import (
    statement_fetch_and_import,
)


class ErrorMappingInline(ReadOnlyInline):
    model = ChannelErrorMapping
    fields = ("channel_code", "unified_code", "decision", "description")


class ProposalAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    """Saving proposes: nothing is written to the object; the proposal waits for a second staff member."""

    proposal_fields: tuple[str, ...] = ()

    def _kind(self, change: bool) -> str:
        raise NotImplementedError

    def _targets(self, obj) -> dict:
        raise NotImplementedError

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request) and self.has_propose_channel_change_permission(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.has_propose_channel_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in self.proposal_fields
                  if name in form.cleaned_data and (not change or name in form.changed_data)}
        if change:  # the form has already set the new values on `obj`: the proposal compares with the stored row
            obj = type(obj).objects.get(pk=obj.pk)
        request._proposal_error = ""
        try:
            proposal = channel_change_propose(kind=self._kind(change), maker=request.user, values=values,
                                              reason=form.cleaned_data["reason"], **self._targets(obj))
        except EngineError as exc:
            request._proposal_error = engine_error_text(exc)
            return
        self.message_user(request, f"Proposed as channel change #{proposal.pk}: a second staff member applies it.",
                          messages.WARNING)

    def save_related(self, request, form, formsets, change):
        return None  # nothing was saved

    def construct_change_message(self, request, form, formsets, add=False):
        return []

    def log_addition(self, request, obj, message):
        return None  # the audit trail records the proposal

    def log_change(self, request, obj, message):
        return None

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_save(request, obj)

    def response_change(self, request, obj):
        return self._after_save(request, obj)

    def _after_save(self, request, obj):
        if getattr(request, "_proposal_error", ""):
            self.message_user(request, request._proposal_error, messages.ERROR)
        return self.response_post_save_change(request, obj)


REASON_HELP = "Why (audited). Saving proposes the change; a second staff member applies it."


class ChannelForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

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
class ChannelAdmin(ProposalAdmin):
    form = ChannelForm
    proposal_fields = CHANNEL_FIELDS
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
    inlines = [ErrorMappingInline]
    actions = ["import_statement_today", "import_statement_yesterday", "mark_unhealthy", "disable_now",
               "mark_healthy"]

    def _kind(self, change: bool) -> str:
        return ChannelChangeKind.CHANNEL_UPDATE if change else ChannelChangeKind.CHANNEL_CREATE

    def _targets(self, obj) -> dict:
        return {"channel": obj} if obj.pk else {}

    def get_readonly_fields(self, request, obj=None):
        # Ledger accounts are keyed by the code: fixed once the channel exists.
        return ("code",) if obj else ()

    @admin.action(description="Mark unhealthy now (outage; routing skips it)", permissions=["propose_channel_change"])
    def mark_unhealthy(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Mark unhealthy", form_class=ReasonForm, done="Channels marked unhealthy",
            permission="propose_channel_change",
            perform=lambda channel, data: channel_switch_off(channel=channel, actor=request.user,
                                                             reason=data["reason"]),
        )

    @admin.action(description="Disable now (enabling again is a proposal)", permissions=["propose_channel_change"])
    def disable_now(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Disable", form_class=ReasonForm, done="Channels disabled",
            permission="propose_channel_change",
            perform=lambda channel, data: channel_switch_off(channel=channel, actor=request.user,
                                                             reason=data["reason"], disable=True),
        )

    @admin.action(description="Mark healthy (the outage is over)", permissions=["propose_channel_change"])
    def mark_healthy(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Mark healthy", form_class=ReasonForm, done="Channels marked healthy",
            permission="propose_channel_change",
            perform=lambda channel, data: channel_mark_healthy(channel=channel, actor=request.user,
                                                               reason=data["reason"]),
        )

    def changelist_view(self, request, extra_context=None):
        self._rates = channel_success_rates()
        alert_open_reviews(request)
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


class ErrorMappingForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    class Meta:
        model = ChannelErrorMapping
        fields = list(MAPPING_FIELDS) + ["channel"]


@admin.register(ChannelErrorMapping)
class ChannelErrorMappingAdmin(ProposalAdmin):
    form = ErrorMappingForm
    proposal_fields = MAPPING_FIELDS
    list_display = ["channel", "channel_code", "unified_code", "decision", "description"]
    list_filter = ["channel", "decision"]
    search_fields = ["channel_code", "unified_code"]
    actions = ["propose_removal"]

    def _kind(self, change: bool) -> str:
        return ChannelChangeKind.MAPPING_UPDATE if change else ChannelChangeKind.MAPPING_CREATE

    def _targets(self, obj) -> dict:
        return {"mapping": obj} if obj.pk else {"channel": obj.channel}

    def get_readonly_fields(self, request, obj=None):
        return ("channel", "channel_code") if obj else ()

    @admin.action(description="Propose removal (a second person applies it)", permissions=["propose_channel_change"])
    def propose_removal(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Propose removal", form_class=ReasonForm, done="Removals proposed",
            permission="propose_channel_change",
            perform=lambda mapping, data: channel_change_propose(
                kind=ChannelChangeKind.MAPPING_DELETE, mapping=mapping, maker=request.user, reason=data["reason"]),
        )


@admin.register(ChannelChangeRequest)
class ChannelChangeRequestAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    list_display = ["id", "kind", "channel", "proposed", "status", "maker", "checker", "created_at", "decided_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["channel", "maker", "checker"]
    actions = ["approve", "reject"]

    def has_change_permission(self, request, obj=None):
        return obj is None and self.has_approve_channel_change_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Approve and apply (never the proposer)", permissions=["approve_channel_change"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve the channel change", form_class=OptionalReasonForm,
            done="Channel changes applied", permission="approve_channel_change",
            perform=lambda change, data: channel_change_approve(request=change, checker=request.user,
                                                                reason=data["reason"]),
        )

    @admin.action(description="Reject (never the proposer)", permissions=["approve_channel_change"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject the channel change", form_class=ReasonForm,
            done="Channel changes rejected", permission="approve_channel_change",
            perform=lambda change, data: channel_change_reject(request=change, checker=request.user,
                                                               reason=data["reason"]),
        )
