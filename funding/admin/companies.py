"""Companies, credit lines and their four-eyes change requests."""

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.admin.common import no_delete
from funding.admin_actions import OptionalReasonForm, ReasonForm, action_with_form
from funding.console.admin_permissions import ConsoleActionPermissions
from funding.errors import EngineError
from funding.models import (
    ChangeRequestKind,
    ChangeRequestStatus,
    Company,
    CompanyChangeRequest,
    CreditLine,
    CreditLineChangeRequest,
    LimitFactorSnapshot,
)
from funding.selectors import limit_factor_view
from funding.services.credit_lines import (
    change_request_approve,
    change_request_propose,
    change_request_reject,
    company_change_approve,
    company_change_reject,
    company_create,
    company_reactivation_propose,
    company_suspend,
    company_update,
    credit_line_create,
    credit_line_freeze,
    credit_line_suspend,
)


class CreditLineTermsForm(forms.Form):
    approved_limit = forms.DecimalField(max_digits=15, decimal_places=2, min_value=Decimal("0"))
    daily_fee_rate = forms.DecimalField(max_digits=7, decimal_places=6, min_value=Decimal("0"))
    penalty_rate = forms.DecimalField(max_digits=7, decimal_places=6, min_value=Decimal("0"))
    valid_from = forms.DateField(help_text="YYYY-MM-DD")
    valid_to = forms.DateField(help_text="YYYY-MM-DD")
    flow_multiple = forms.DecimalField(max_digits=8, decimal_places=4, required=False)
    margin_multiple = forms.DecimalField(max_digits=8, decimal_places=4, required=False)
    daily_cap = forms.DecimalField(max_digits=15, decimal_places=2, min_value=Decimal("0"), required=False,
                                   help_text="the most the line advances on one business date; empty: none")
    limit_thresholds = forms.CharField(required=False, help_text="utilisation thresholds announced to the company, "
                                                                 "e.g. 0.80,0.95 (empty: the default)")


def _terms(cleaned: dict) -> dict:
    terms = {k: (v.isoformat() if hasattr(v, "isoformat") else str(v)) for k, v in cleaned.items()
             if v is not None and v != "" and k not in ("reason", "remove_daily_cap")}
    if cleaned.get("remove_daily_cap"):
        terms["daily_cap"] = ""
    return terms


@no_delete
@admin.register(Company)
class CompanyAdmin(ConsoleActionPermissions, admin.ModelAdmin):
    list_display = ("code", "legal_name", "status", "settlement_account_no", "margin_account_no",
                    "created_at")
    list_filter = ("status",)
    search_fields = ("code", "legal_name", "settlement_account_no")
    readonly_fields = ("status", "registered_webhook_url", "created_at", "updated_at")
    actions = ["propose_credit_line", "suspend", "propose_reactivation"]

    @admin.display(description="Webhook URL (registered by the company through the API)")
    def registered_webhook_url(self, obj):
        endpoint = getattr(obj, "webhook_endpoint", None)
        return (endpoint.url if endpoint else "") or "-"

    def get_readonly_fields(self, request, obj=None):
        # The code and account numbers name ledger accounts: fixed once the company exists.
        fixed = ("code", "settlement_account_no", "margin_account_no") if obj else ()
        return (*fixed, *self.readonly_fields)

    def save_model(self, request, obj, form, change):
        if change:
            company_update(company=obj, legal_name=form.cleaned_data["legal_name"], actor=request.user)
            return
        created = company_create(
            code=obj.code, legal_name=obj.legal_name, settlement_account_no=obj.settlement_account_no,
            margin_account_no=obj.margin_account_no, actor=request.user,
        )
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description="Propose a new credit line (a second person approves it)",
                  permissions=["propose_credit_change"])
    def propose_credit_line(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Propose a new credit line", form_class=CreditLineTermsForm,
            perform=lambda company, data: credit_line_create(company=company, terms=_terms(data),
                                                             actor=request.user),
            done="Credit lines proposed", permission="propose_credit_change",
        )

    @admin.action(description="Suspend now (every advance refused)", permissions=["suspend_company"])
    def suspend(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Suspend", form_class=ReasonForm, done="Companies suspended",
            permission="suspend_company",
            perform=lambda company, data: company_suspend(company=company, actor=request.user,
                                                          reason=data["reason"]),
        )

    @admin.action(description="Propose reactivation (maker; a second person approves it)",
                  permissions=["propose_credit_change"])
    def propose_reactivation(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Propose reactivation", form_class=ReasonForm,
            done="Reactivations proposed", permission="propose_credit_change",
            perform=lambda company, data: company_reactivation_propose(company=company, maker=request.user,
                                                                       reason=data["reason"]),
        )


@admin.register(CompanyChangeRequest)
class CompanyChangeRequestAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    list_display = ("id", "company", "kind", "status", "maker", "checker", "created_at", "decided_at")
    list_filter = ("status", "kind")
    list_select_related = ("company", "maker", "checker")
    actions = ["approve", "reject"]

    def has_change_permission(self, request, obj=None):
        return obj is None and self.has_approve_credit_change_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Approve (checker; never the maker)", permissions=["approve_credit_change"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve", form_class=OptionalReasonForm, done="Requests approved",
            permission="approve_credit_change",
            perform=lambda change, data: company_change_approve(request=change, checker=request.user,
                                                                reason=data["reason"]),
        )

    @admin.action(description="Reject (checker; never the maker)", permissions=["approve_credit_change"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject", form_class=ReasonForm, done="Requests rejected",
            permission="approve_credit_change",
            perform=lambda change, data: company_change_reject(request=change, checker=request.user,
                                                               reason=data["reason"]),
        )


# --- credit lines -------------------------------------------------------------------------------------

ZERO = Decimal("0")


class ChangeTermsForm(forms.Form):
    approved_limit = forms.DecimalField(max_digits=15, decimal_places=2, min_value=ZERO, required=False)
    daily_fee_rate = forms.DecimalField(max_digits=7, decimal_places=6, min_value=ZERO, required=False)
    penalty_rate = forms.DecimalField(max_digits=7, decimal_places=6, min_value=ZERO, required=False)
    valid_from = forms.DateField(required=False)
    valid_to = forms.DateField(required=False)
    flow_multiple = forms.DecimalField(max_digits=8, decimal_places=4, required=False)
    margin_multiple = forms.DecimalField(max_digits=8, decimal_places=4, required=False)
    daily_cap = forms.DecimalField(max_digits=15, decimal_places=2, min_value=ZERO, required=False)
    remove_daily_cap = forms.BooleanField(required=False)
    limit_thresholds = forms.CharField(required=False, help_text="e.g. 0.80,0.95")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class ChangeRequestInline(ReadOnlyInline):
    model = CreditLineChangeRequest
    fields = ("kind", "status", "proposed", "maker", "maker_reason", "checker", "checker_reason",
              "decided_at")
    show_change_link = True
    ordering = ("-created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("maker", "checker")


@admin.register(CreditLine)
class CreditLineAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    list_display = ("__str__", "company", "status", "approved_limit", "effective_limit", "reserved",
                    "outstanding", "available_display", "daily_cap", "valid_from", "valid_to", "version")
    list_filter = ("status",)
    list_select_related = ("company",)
    search_fields = ("company__code", "company__legal_name")
    inlines = [ChangeRequestInline]
    actions = ["approve_line", "reject_line", "freeze", "suspend", "propose_change", "propose_unfreeze",
               "propose_resume"]

    @admin.display(description="available (exposure limit; the daily cap is on the console's dashboard)")
    def available_display(self, line: CreditLine) -> Decimal:
        return line.available

    def get_fields(self, request, obj=None):
        return [*super().get_fields(request, obj), "factors_display", "factor_history"]

    @admin.display(description="limit factors (with their inputs)")
    def factors_display(self, line: CreditLine) -> str:
        return _factors_html(line.limit_factors)

    @admin.display(description="limit history (latest 30 computations; all under Limit factor snapshots)")
    def factor_history(self, line: CreditLine) -> str:
        rows = LimitFactorSnapshot.objects.filter(credit_line=line).order_by("-created_at", "-id")[:30]
        return format_html(
            "<table><tr><th>when</th><th>trigger</th><th>as of</th><th>approved</th><th>effective</th>"
            "<th>factors</th><th>by</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                 "<td>{}</td></tr>",
                             ((f"{s.created_at:%Y-%m-%d %H:%M}", s.get_trigger_display(), s.as_of, s.approved_limit,
                               s.effective_limit, _factors_html(s.factors), s.actor_label) for s in rows)),
        )

    def has_change_permission(self, request, obj=None):
        # The change page stays read-only (every field below), but the actions need change permission.
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def _decide_new_line(self, request, queryset, *, approve: bool):
        def perform(line, data):
            pending = line.change_requests.filter(kind=ChangeRequestKind.APPROVE_LINE,
                                                  status=ChangeRequestStatus.PENDING).first()
            if pending is None:
                raise EngineError(f"{line} has no pending approval request.")
            decide = change_request_approve if approve else change_request_reject
            decide(request=pending, checker=request.user, reason=data["reason"])

        return action_with_form(
            self, request, queryset, title="Approve the new line" if approve else "Reject the new line",
            form_class=OptionalReasonForm if approve else ReasonForm, perform=perform,
            done="Lines approved" if approve else "Lines rejected", permission="approve_credit_change",
        )

    @admin.action(description="Approve new line (checker)", permissions=["approve_credit_change"])
    def approve_line(self, request, queryset):
        return self._decide_new_line(request, queryset, approve=True)

    @admin.action(description="Reject new line (checker)", permissions=["approve_credit_change"])
    def reject_line(self, request, queryset):
        return self._decide_new_line(request, queryset, approve=False)

    @admin.action(description="Freeze now", permissions=["freeze_credit_line"])
    def freeze(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Freeze", form_class=ReasonForm, done="Lines frozen",
            permission="freeze_credit_line",
            perform=lambda line, data: credit_line_freeze(credit_line=line, actor=request.user,
                                                          reason=data["reason"]),
        )

    @admin.action(description="Suspend now", permissions=["freeze_credit_line"])
    def suspend(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Suspend", form_class=ReasonForm, done="Lines suspended",
            permission="freeze_credit_line",
            perform=lambda line, data: credit_line_suspend(credit_line=line, actor=request.user,
                                                           reason=data["reason"]),
        )

    def _propose(self, request, queryset, *, kind: str, title: str, form_class):
        return action_with_form(
            self, request, queryset, title=title, form_class=form_class, done="Requests proposed",
            permission="propose_credit_change",
            perform=lambda line, data: change_request_propose(
                credit_line=line, kind=kind, proposed=_terms(data) if kind == ChangeRequestKind.CHANGE_TERMS
                else {}, maker=request.user, reason=data["reason"]),
        )

    @admin.action(description="Propose a change of limit or terms (maker)",
                  permissions=["propose_credit_change"])
    def propose_change(self, request, queryset):
        return self._propose(request, queryset, kind=ChangeRequestKind.CHANGE_TERMS,
                             title="Propose a change of terms", form_class=ChangeTermsForm)

    @admin.action(description="Propose unfreeze (maker)", permissions=["propose_credit_change"])
    def propose_unfreeze(self, request, queryset):
        return self._propose(request, queryset, kind=ChangeRequestKind.UNFREEZE, title="Propose unfreeze",
                             form_class=ReasonForm)

    @admin.action(description="Propose resume (maker)", permissions=["propose_credit_change"])
    def propose_resume(self, request, queryset):
        return self._propose(request, queryset, kind=ChangeRequestKind.RESUME, title="Propose resume",
                             form_class=ReasonForm)


def _factors_html(factors: list) -> str:
    return format_html_join(
        "", "<div>{}</div>",
        ((", ".join(f"{k}={v}" for k, v in limit_factor_view(factor).items()),)
         for factor in factors or [] if isinstance(factor, dict)),
    )


@admin.register(LimitFactorSnapshot)
class LimitFactorSnapshotAdmin(ReadOnlyAdmin):
    """Every computation of every effective limit, with its inputs (append-only)."""

    list_display = ("created_at", "credit_line", "trigger", "as_of", "approved_limit", "effective_limit",
                    "actor_label")
    list_filter = ("trigger", "as_of")
    list_select_related = ("credit_line__company",)
    search_fields = ("credit_line__company__code",)
    date_hierarchy = "created_at"


@admin.register(CreditLineChangeRequest)
class CreditLineChangeRequestAdmin(ConsoleActionPermissions, ReadOnlyAdmin):
    list_display = ("id", "credit_line", "kind", "status", "maker", "checker", "created_at", "decided_at")
    list_filter = ("status", "kind")
    list_select_related = ("credit_line__company", "maker", "checker")
    search_fields = ("credit_line__company__code", "maker__username", "checker__username")
    date_hierarchy = "created_at"
    actions = ["approve", "reject"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Approve (checker; never the maker)", permissions=["approve_credit_change"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Approve", form_class=OptionalReasonForm, done="Requests approved",
            permission="approve_credit_change",
            perform=lambda change, data: change_request_approve(request=change, checker=request.user,
                                                                reason=data["reason"]),
        )

    @admin.action(description="Reject (checker; never the maker)", permissions=["approve_credit_change"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, title="Reject", form_class=ReasonForm, done="Requests rejected",
            permission="approve_credit_change",
            perform=lambda change, data: change_request_reject(request=change, checker=request.user,
                                                               reason=data["reason"]),
        )


# --- advances and events --------------------------------------------------------------------------------
