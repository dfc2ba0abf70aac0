"""Staff views of keys (never the secret) and of webhook deliveries, with redelivery through a service."""

from django.contrib import admin, messages

from config.admin import ReadOnlyInline
from funding.api.models import ApiKey, WebhookDeliveryAttempt, WebhookEndpoint, WebhookOutboxEvent
from funding.api.services import api_key_revoke, webhook_event_redeliver
from funding.console.admin_permissions import ConsoleActionPermissions, action_refused


@admin.register(ApiKey)
class ApiKeyAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    list_display = ["key_id", "company", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["key_id", "company__code"]
    fields = ["key_id", "company", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued with `manage.py issue_api_key`, which shows the secret once

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected keys now", permissions=["revoke_api_key"])
    def revoke(self, request, queryset):
        if action_refused(self, request, "revoke_api_key"):
            return
        for key in queryset:
            api_key_revoke(key=key, actor=request.user, reason="revoked in the admin")
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["company", "url", "updated_at"]
    fields = ["company", "url", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AttemptInline(ReadOnlyInline):
    model = WebhookDeliveryAttempt
    fields = ["number", "attempted_at", "url", "status_code", "latency_ms", "succeeded", "error"]


@admin.register(WebhookOutboxEvent)
class WebhookOutboxEventAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    list_display = [
        "public_id",
        "company",
        "type",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "type"]
    list_select_related = ["company"]
    search_fields = ["public_id", "resource_id", "company__code"]
    fields = [
        "public_id",
        "company",
        "type",
        "resource_type",
        "resource_id",
        "resource_version",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
        "payload",
    ]
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver the selected failed events", permissions=["redeliver_webhook"])
    def redeliver(self, request, queryset):
        if action_refused(self, request, "redeliver_webhook"):
            return
        done = sum(webhook_event_redeliver(event=e, actor=request.user) for e in queryset)
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"Queued {done} event(s) again; {skipped} skipped (not failed).",
            messages.SUCCESS if done else messages.WARNING,
        )


@admin.register(WebhookDeliveryAttempt)
class WebhookDeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ["event", "number", "attempted_at", "status_code", "latency_ms", "succeeded", "error"]
    list_filter = ["succeeded"]
    search_fields = ["event__public_id"]
    readonly_fields = [
        "event",
        "number",
        "url",
        "attempted_at",
        "status_code",
        "latency_ms",
        "succeeded",
        "error",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
