"""Advances, the webhook outbox and the audit trail (read-only; cancel goes through the service)."""


from django.contrib import admin, messages

from config.admin import ReadOnlyAdmin
from funding.admin_actions import engine_error_text
from funding.errors import EngineError
from funding.models import (
    Advance,
    AuditEvent,
)
from funding.services.advances import advance_cancel


@admin.register(Advance)
class AdvanceAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "company", "external_id", "status", "amount", "own_funds_amount",
                    "advanced_amount", "returned_amount", "fee", "business_date", "due_date", "created_at")
    list_filter = ("status", "company", "business_date", "due_date")
    list_select_related = ("company",)
    search_fields = ("public_id", "external_id", "company__code")
    date_hierarchy = "business_date"
    actions = ["cancel"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Cancel (only advances still reserved)", permissions=["change"])
    def cancel(self, request, queryset):
        cancelled = 0
        for advance in queryset.select_related("company"):
            try:
                advance_cancel(company=advance.company, public_id=advance.public_id,
                               actor_label=request.user.get_username())
            except EngineError as exc:
                self.message_user(request, f"{advance}: {engine_error_text(exc)}", messages.ERROR)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"Advances cancelled: {cancelled}.", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "actor_label", "action", "object_type", "object_id", "company", "reason")
    list_filter = ("action", "object_type", "company")
    list_select_related = ("actor", "company")
    search_fields = ("actor_label", "object_id", "reason")
    date_hierarchy = "occurred_at"


# --- business date and calendar -------------------------------------------------------------------------
