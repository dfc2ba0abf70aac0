"""The business date (read-only) and the stored calendar (staff corrections, audited)."""


from django import forms
from django.contrib import admin

from config.admin import ReadOnlyAdmin
from funding.admin.common import no_delete
from funding.models import (
    BusinessDay,
    CalendarDay,
    CalendarDayKind,
    CalendarYear,
)
from funding.services.calendar import calendar_day_update


@admin.register(BusinessDay)
class BusinessDayAdmin(ReadOnlyAdmin):
    """Moved only by the end-of-day job."""

    list_display = ("current", "closing", "updated_at")


@admin.register(CalendarYear)
class CalendarYearAdmin(ReadOnlyAdmin):
    list_display = ("year", "published", "source", "updated_at")


class CalendarDayForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Why the stored calendar differs from the published one (audited).")

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
class CalendarDayAdmin(admin.ModelAdmin):
    """Staff correct single days (source becomes 'staff', audited); whole years come from seed_calendar."""

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

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        calendar_day_update(day=obj.date, kind=data["kind"], is_business_day=data["is_business_day"],
                            name=data["name"], actor=request.user, reason=data["reason"])
