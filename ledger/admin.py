"""The ledger in the admin: read-only for everyone. Corrections are reversing postings made by services."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from ledger.models import Account, Entry, JournalTransaction


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "kind", "type", "owner", "currency", "debits_posted", "credits_posted",
                    "debits_pending", "balance_display", "available_display")
    list_filter = ("kind", "type", "currency")
    search_fields = ("code", "owner", "external_account_no")
    ordering = ("code",)

    @admin.display(description="balance")
    def balance_display(self, account: Account):
        return account.balance

    @admin.display(description="available (less holds)")
    def available_display(self, account: Account):
        return account.available


class EntryInline(ReadOnlyInline):
    model = Entry
    fields = ("account", "direction", "amount", "currency")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("account")


@admin.register(JournalTransaction)
class JournalTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "reference", "business_date", "reverses", "created_at")
    list_filter = ("kind", "business_date")
    list_select_related = ("reverses",)
    search_fields = ("reference", "description")
    date_hierarchy = "business_date"
    inlines = [EntryInline]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "transaction", "account", "direction", "amount", "currency")
    list_filter = ("direction", "currency", "account__kind")
    list_select_related = ("transaction", "account")
    search_fields = ("transaction__reference", "account__code")
