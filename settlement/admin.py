"""Payouts and attempts in the admin, read-only: their states change only through the settlement services."""

from django.contrib import admin
from django.http import HttpRequest

from settlement.models import Payout, PayoutAttempt


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AttemptInline(admin.TabularInline):
    model = PayoutAttempt
    fields = ("number", "serial", "channel", "status", "failure_code", "amount", "fee", "submitted_at",
              "resolved_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("channel")


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "advance", "sequence", "external_id", "status", "amount", "own_funds_amount",
                    "advanced_amount", "attempt_count", "funds_out", "updated_at")
    list_filter = ("status", "funds_out")
    list_select_related = ("advance",)
    search_fields = ("public_id", "external_id", "advance__public_id")
    inlines = [AttemptInline]


@admin.register(PayoutAttempt)
class PayoutAttemptAdmin(ReadOnlyAdmin):
    list_display = ("serial", "payout", "number", "channel", "status", "amount", "fee", "failure_code",
                    "submitted_at", "resolved_at")
    list_filter = ("status", "channel")
    list_select_related = ("payout", "channel")
    search_fields = ("serial", "payout__public_id")
