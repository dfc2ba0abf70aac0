"""Margin set-offs (four eyes, settlement.services.margin): a credit officer proposes one from "Add margin
set-off" (company, amount, reason; the form shows the company's margin and overdue debt when refused), a credit
approver approves (the amount is collected from the margin account at once, like a repayment) or rejects it
from the list. The rows themselves are never edited."""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from funding.admin_actions import OptionalReasonForm, ReasonForm, action_with_form, engine_error_text
from funding.console.admin_permissions import ConsoleActionPermissions
from funding.errors import EngineError
from funding.models import Company
from settlement.models import MarginSetOff
from settlement.services.margin import (
    margin_available,
    margin_overdue_total,
    margin_setoff_approve,
    margin_setoff_propose,
    margin_setoff_reject,
    margin_setoff_validate,
)


class MarginSetOffProposalForm(forms.ModelForm):
    company = forms.ModelChoiceField(queryset=Company.objects.order_by("code"))
    amount = forms.DecimalField(max_digits=15, decimal_places=2, min_value=Decimal("0.01"))
    maker_reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    class Meta:
        model = MarginSetOff
        fields = ["company", "amount", "maker_reason"]

    def clean(self):
        data = super().clean()
        if data.get("company") is not None and data.get("amount") is not None:
            try:
                margin_setoff_validate(company=data["company"], amount=data["amount"])
            except EngineError as exc:
                raise ValidationError(engine_error_text(exc)) from exc
        return data

    def _post_clean(self):
        pass  # the service validates and creates the row; the model instance is never saved by the form


@admin.register(MarginSetOff)
class MarginSetOffAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    list_display = ["id", "company", "amount", "status", "margin_balance_at_proposal", "overdue_at_proposal",
                    "maker", "checker", "business_date", "created_at", "decided_at"]
    list_filter = ["status"]
    list_select_related = ["company", "maker", "checker"]
    search_fields = ["company__code"]
    actions = ["approve", "reject"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MarginSetOffProposalForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["company", "amount", "maker_reason"]
        return [f.name for f in self.model._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request) and self.has_propose_margin_setoff_permission(request)

    def has_change_permission(self, request, obj=None):
        # The list's approve and reject actions only; a set-off is never edited.
        return obj is None and self.has_approve_margin_setoff_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            created = margin_setoff_propose(company=data["company"], amount=data["amount"], maker=request.user,
                                            reason=data["maker_reason"])
        except EngineError as exc:  # changed since the form was checked
            self.message_user(request, engine_error_text(exc), messages.ERROR)
            return
        obj.pk = created.pk
        self.message_user(
            request,
            f"Proposed as margin set-off #{created.pk} (margin {margin_available(company=created.company)}, overdue "
            f"{margin_overdue_total(company=created.company)}): a credit approver applies it.",
            messages.WARNING,
        )

    def save_related(self, request, form, formsets, change):
        return None

    def log_addition(self, request, obj, message):
        return None  # the audit trail records the proposal

    def response_add(self, request, obj, post_url_continue=None):
        return self.response_post_save_add(request, obj)

    @admin.action(description="Approve and apply (never the proposer)", permissions=["approve_margin_setoff"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve the margin set-off", form_class=OptionalReasonForm,
            done="Margin set-offs applied", permission="approve_margin_setoff",
            perform=lambda setoff, data: margin_setoff_approve(setoff=setoff, checker=request.user,
                                                              reason=data["reason"]),
        )

    @admin.action(description="Reject (never the proposer)", permissions=["approve_margin_setoff"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject the margin set-off", form_class=ReasonForm,
            done="Margin set-offs rejected", permission="approve_margin_setoff",
            perform=lambda setoff, data: margin_setoff_reject(setoff=setoff, checker=request.user,
                                                             reason=data["reason"]),
        )
