"""Channels and their error maps (per-channel failure codes -> the engine's decision)."""

from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils import timezone

from funding.console.admin_permissions import ConsoleActionPermissions, action_refused
from settlement.admin.payouts import alert_open_reviews
from settlement.models import (
    Channel,
    ChannelErrorMapping,
)
from settlement.services.channels import channel_success_rates
from settlement.services.reconciliation import (
    statement_fetch_and_import,
)


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


@admin.register(ChannelErrorMapping)
class ChannelErrorMappingAdmin(admin.ModelAdmin):
    list_display = ["channel", "channel_code", "unified_code", "decision", "description"]
    list_filter = ["channel", "decision"]
    search_fields = ["channel_code", "unified_code"]
