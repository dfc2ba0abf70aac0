"""The business date (read-only), the stored calendar and its four-eyes changes.

A staff member's edit of a day is a proposal (calendar_day_propose); a different staff member approves it
(or a year's publication) with the actions of "Calendar change requests"; the console's Calendar page
(/admin/console/calendar/) uploads a year's file.
"""


from django import forms
from django.contrib import admin, messages

from config.admin import ReadOnlyAdmin
from funding.admin.common import no_delete
from funding.admin_actions import OptionalReasonForm, ReasonForm, action_with_form, engine_error_text
from funding.console.admin_permissions import ConsoleActionPermissions
from funding.errors import EngineError
from funding.models import (
    BusinessDay,
    CalendarChangeRequest,
    CalendarDay,
    CalendarDayKind,
    CalendarYear,
)
from funding.services.calendar_publication import (
    calendar_change_approve,
    calendar_change_reject,
    calendar_day_propose,
)


@admin.register(BusinessDay)
class BusinessDayAdmin(ReadOnlyAdmin):
    """Moved only by the end-of-day job."""

    list_display = ("current", "closing", "updated_at")


@admin.register(CalendarYear)
class CalendarYearAdmin(ReadOnlyAdmin):
    list_display = ("year", "published", "source", "published_by", "published_at", "updated_at")


class CalendarDayForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Why the stored calendar should differ from the published one (audited). "
                                       "Saving proposes the change; a second staff member applies it.")

    class Meta:
        model = CalendarDay
        fields = ("kind", "is_business_day", "name")

    def clean(self):
        cleaned = super().clean()
        kind, business = cleaned.get("kind"), cleaned.get("is_business_day")
        if kind == CalendarDayKind.WORKDAY and business is False:
            self.add_error("is_business_day", "A working day is a business day.")
        if kind in (CalendarDayKind.HOLIDAY, CalendarDayKind.WEEKEND) and business:
            self.add_error("is_business_day", "A holiday or weekend is not a business day.")
        return cleaned


@no_delete
@admin.register(CalendarDay)
class CalendarDayAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    """Staff propose single-day corrections (four eyes); whole years come from seed_calendar or a publication."""

    form = CalendarDayForm
    list_display = ("date", "weekday", "kind", "is_business_day", "name", "source", "updated_by")
    list_filter = ("is_business_day", "kind", "source")
    list_select_related = ("updated_by",)
    date_hierarchy = "date"
    readonly_fields = ("date", "source", "updated_by", "updated_at")

    @admin.display(description="weekday")
    def weekday(self, day: CalendarDay) -> str:
        return day.date.strftime("%a")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.has_propose_calendar_permission(request)

    def save_model(self, request, obj, form, change):
        # Nothing is saved here: the edit becomes a proposal, applied by another staff member's approval.
        data = form.cleaned_data
        try:
            proposal = calendar_day_propose(day=obj.date, kind=data["kind"], is_business_day=data["is_business_day"],
                                            name=data["name"], maker=request.user, reason=data["reason"])
        except EngineError as exc:
            request._proposal_error = engine_error_text(exc)
            return
        request._proposal_error = ""
        self.message_user(request, f"Proposed as calendar change #{proposal.pk}: a second staff member applies it.",
                          messages.WARNING)

    def log_change(self, request, obj, message):
        return None  # the audit trail records the proposal; the admin's log would claim a change

    def response_change(self, request, obj):
        if getattr(request, "_proposal_error", ""):
            self.message_user(request, request._proposal_error, messages.ERROR)
        return super().response_post_save_change(request, obj)


@admin.register(CalendarChangeRequest)
class CalendarChangeRequestAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    list_display = ("id", "kind", "year", "status", "file_name", "maker", "checker", "created_at", "decided_at")
    list_filter = ("status", "kind", "year")
    list_select_related = ("maker", "checker")
    actions = ["approve", "reject"]

    def has_change_permission(self, request, obj=None):
        return obj is None and self.has_approve_calendar_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Approve and apply (never the proposer)", permissions=["approve_calendar"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve the calendar change", form_class=OptionalReasonForm,
            done="Calendar changes applied", permission="approve_calendar",
            perform=lambda change, data: calendar_change_approve(request=change, checker=request.user,
                                                                 reason=data["reason"]),
        )

    @admin.action(description="Reject (never the proposer)", permissions=["approve_calendar"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject the calendar change", form_class=ReasonForm,
            done="Calendar changes rejected", permission="approve_calendar",
            perform=lambda change, data: calendar_change_reject(request=change, checker=request.user,
                                                                reason=data["reason"]),
        )
