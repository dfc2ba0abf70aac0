"""Returns (退汇): booked returns (read-only) and staff return requests under four eyes.

A maker (operations) proposes the return of a succeeded payout with the bank's advice as reason; a different
checker (credit_approver) approves (the return is booked at once) or rejects. The form only calls the services;
the services refuse the same user twice (`four_eyes_violation`) and the database refuses it again.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from config.admin import ReadOnlyAdmin
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from settlement.models import PayoutReturn, PayoutReturnRequest, PayoutReturnRequestStatus
from settlement.services.returns import payout_return_approve, payout_return_propose, payout_return_reject


@admin.register(PayoutReturn)
class PayoutReturnAdmin(ReadOnlyAdmin):
    list_display = [
        "payout",
        "business_date",
        "source",
        "channel",
        "amount",
        "own_funds",
        "principal_released",
        "principal_refunded",
        "fee_before",
        "fee_after",
        "fee_refunded",
        "created_at",
    ]
    list_filter = ["source", "business_date", "channel"]
    search_fields = ["payout__public_id", "payout__advance__public_id", "attempt__serial"]
    list_select_related = ["payout", "channel"]


class ProposeReturnForm(forms.ModelForm):
    """The maker names the payout (po_...) and the bank's return advice."""

    payout_id = forms.CharField(label="Payout id (po_...)", max_length=40)

    class Meta:
        model = PayoutReturnRequest
        fields = ["reason"]

    def clean(self):
        cleaned = super().clean()
        user = self.request.user
        try:
            require_permission(user, "propose_payout_return")
            self.instance = payout_return_propose(
                payout_public_id=(cleaned.get("payout_id") or "").strip(),
                reason=cleaned.get("reason", ""),
                maker=user,
            )
        except PermissionDenied as exc:
            raise ValidationError(f"{exc.message} ({exc.code}: console.propose_payout_return)") from exc
        except EngineError as exc:
            raise ValidationError(f"{exc.code}: {exc.message} {exc.details or ''}".strip()) from exc
        return cleaned


class DecideReturnForm(forms.ModelForm):
    """The checker approves (books the return) or rejects; never the maker."""

    ACTIONS = [("approve", "Approve: book the return"), ("reject", "Reject the proposal")]
    action = forms.ChoiceField(choices=ACTIONS)
    decision = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 3}), required=False)

    class Meta:
        model = PayoutReturnRequest
        fields: list[str] = []

    def clean(self):
        cleaned = super().clean()
        action, reason, user = cleaned.get("action"), cleaned.get("decision", ""), self.request.user
        try:
            require_permission(user, "approve_payout_return")
            if action == "approve":
                payout_return_approve(request_id=self.instance.pk, checker=user, reason=reason)
            elif action == "reject":
                payout_return_reject(request_id=self.instance.pk, checker=user, reason=reason)
        except PermissionDenied as exc:
            raise ValidationError(f"{exc.message} ({exc.code}: console.approve_payout_return)") from exc
        except EngineError as exc:
            raise ValidationError(f"{exc.code}: {exc.message} {exc.details or ''}".strip()) from exc
        return cleaned


@admin.register(PayoutReturnRequest)
class PayoutReturnRequestAdmin(admin.ModelAdmin):
    list_display = ["payout", "status", "proposed_by", "proposed_at", "decided_by", "decided_at", "reason"]
    list_filter = ["status"]
    search_fields = ["payout__public_id", "payout__advance__public_id"]
    list_select_related = ["payout", "proposed_by", "decided_by"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = DecideReturnForm if obj is not None else ProposeReturnForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["payout_id", "reason"]
        return [*self.get_readonly_fields(request, obj), "action", "decision"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["payout", "status", "reason", "proposed_by", "proposed_at", "decided_by", "decided_at",
                "decision_reason"]

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == PayoutReturnRequestStatus.PROPOSED)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """The service already did the work (in clean); saving the form's instance would write it twice."""

    def save_related(self, request, form, formsets, change):
        pass
