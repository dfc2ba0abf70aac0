"""Payouts with their attempts, and manual reviews of unknown outcomes (four eyes)."""


from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from funding.models import Payout
from settlement.models import ManualReview, ManualReviewStatus, PayoutAttempt, PayoutReturn, PayoutReturnRequest
from settlement.services.reviews import manual_review_approve, manual_review_propose, manual_review_reject


def alert_open_reviews(request) -> None:
    open_count = ManualReview.objects.exclude(status=ManualReviewStatus.RESOLVED).count()
    if open_count:
        url = reverse("admin:settlement_manualreview_changelist")
        messages.warning(request, f"{open_count} payout(s) need manual review: {url}")


class AttemptInline(ReadOnlyInline):
    model = PayoutAttempt
    fields = [
        "number",
        "serial",
        "channel",
        "status",
        "failure_code",
        "channel_code",
        "decision",
        "created_at",
        "resolved_at",
        "resolved_by",
        "query_count",
        "last_query",
        "next_query_at",
        "routing",
    ]


class ReturnInline(ReadOnlyInline):
    """The return (退汇) of a returned payout: how it split, the fee before and after, the refund."""

    model = PayoutReturn
    fields = [
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
        "journal",
        "statement",
        "request",
    ]


class ReturnRequestInline(ReadOnlyInline):
    """Staff proposals to book a return (four eyes), decided in the return requests screen."""

    model = PayoutReturnRequest
    fields = ["status", "reason", "proposed_by", "proposed_at", "decided_by", "decided_at", "decision_reason"]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "advance",
        "sequence",
        "amount",
        "status",
        "attempt_count",
        "failure_code",
        "updated_at",
    ]
    # Staff look for "this company's payouts through HVPS yesterday that failed".
    list_filter = ["status", "attempts__channel", "advance__company",
                   "value_date", "failure_code"]
    search_fields = ["public_id", "external_id", "advance__public_id", "advance__company__code", "account_no"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline, ReturnInline, ReturnRequestInline]

    def changelist_view(self, request, extra_context=None):
        alert_open_reviews(request)
        return super().changelist_view(request, extra_context)


@admin.register(PayoutAttempt)
class PayoutAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "channel",
        "status",
        "amount",
        "fee",
        "failure_code",
        "channel_code",
        "created_at",
        "resolved_by",
        "query_count",
        "next_query_at",
    ]
    list_filter = ["status", "channel", "resolved_by", "decision"]
    search_fields = ["serial"]


class ManualReviewForm(forms.ModelForm):
    """The only way staff change a review: propose (maker) or approve/reject (a different checker)."""

    ACTIONS = [
        ("propose_succeeded", "Propose: the channel paid"),
        ("propose_failed", "Propose: the channel did not pay"),
        ("approve", "Approve the proposal (checker)"),
        ("reject", "Reject the proposal (checker)"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    class Meta:
        model = ManualReview
        fields: list[str] = []

    def clean(self):
        cleaned = super().clean()
        action, reason, user = cleaned.get("action"), cleaned.get("reason", ""), self.request.user
        try:
            require_permission(user, "resolve_manual_review")
            if action in ("propose_succeeded", "propose_failed"):
                manual_review_propose(
                    review_id=self.instance.pk, outcome=action.split("_", 1)[1], reason=reason, maker=user
                )
            elif action == "approve":
                manual_review_approve(review_id=self.instance.pk, checker=user, reason=reason)
            elif action == "reject":
                manual_review_reject(review_id=self.instance.pk, checker=user, reason=reason)
        except PermissionDenied as exc:
            raise ValidationError(f"{exc.message} ({exc.code}: console.resolve_manual_review)") from exc
        except EngineError as exc:
            raise ValidationError(f"{exc.message} {exc.details or ''}".strip()) from exc
        return cleaned


@admin.register(ManualReview)
class ManualReviewAdmin(admin.ModelAdmin):
    form = ManualReviewForm
    list_display = [
        "attempt",
        "payout",
        "status",
        "opened_at",
        "opened_reason",
        "proposed_outcome",
        "proposed_by",
        "approved_by",
        "resolution",
    ]
    list_filter = ["status", "attempt__channel", "opened_at"]
    search_fields = ["attempt__serial", "payout__public_id", "payout__external_id", "payout__advance__public_id",
                     "payout__advance__company__code"]
    readonly_fields = [
        "attempt",
        "payout",
        "status",
        "opened_at",
        "opened_reason",
        "proposed_outcome",
        "proposed_by",
        "proposal_reason",
        "proposed_at",
        "approved_by",
        "resolved_at",
        "resolution",
        "resolved_by_label",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def save_model(self, request, obj, form, change):
        """The service already did the work (in clean); saving the stale instance would undo it."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
