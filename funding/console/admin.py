"""Failed staff logins, read-only, for auditors (the throttle writes them; nobody edits them)."""

from django.contrib import admin

from funding.console.models import LoginFailure


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "username", "ip_address")
    search_fields = ("username", "ip_address")
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
