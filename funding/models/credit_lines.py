"""Credit lines and their four-eyes change requests."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models.common import MONEY, RATE
from funding.models.companies import Company


class CreditLineStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    FROZEN = "frozen", "Frozen"
    SUSPENDED = "suspended", "Suspended"
    EXPIRED = "expired", "Expired"


LIVE_LINE_STATES = [
    CreditLineStatus.DRAFT,
    CreditLineStatus.PENDING_APPROVAL,
    CreditLineStatus.ACTIVE,
    CreditLineStatus.FROZEN,
    CreditLineStatus.SUSPENDED,
]


class CreditLine(FSMModelMixin, models.Model):
    """A company's advance limit. Counters move only by conditional UPDATEs in funding.services.

    The database backstop: reserved + outstanding never exceeds `limit_ceiling`, which is the effective
    limit, or the usage at the moment the limit was cut below it (holds never raise it; every release and
    repayment lowers it back towards the effective limit).
    """

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="credit_lines")
    status = FSMField(default=CreditLineStatus.DRAFT, choices=CreditLineStatus.choices, protected=True)
    currency = models.CharField(max_length=3, default=settings.ENGINE_CURRENCY)
    approved_limit = models.DecimalField(**MONEY, default=0)
    effective_limit = models.DecimalField(**MONEY, default=0)
    limit_ceiling = models.DecimalField(**MONEY, default=0)
    reserved = models.DecimalField(**MONEY, default=0)
    outstanding = models.DecimalField(**MONEY, default=0)
    # The factors the effective limit was computed from, as of `limit_factors_date`.
    limit_factors = models.JSONField(default=list, blank=True)
    limit_factors_date = models.DateField(null=True, blank=True)
    daily_fee_rate = models.DecimalField(**RATE, default=0)
    penalty_rate = models.DecimalField(**RATE, default=0)
    # Optional factors: limit <= flow_multiple x average daily credits over flow_window_days business days,
    # and limit <= margin_multiple x margin-deposit balance.
    flow_multiple = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    flow_window_days = models.PositiveSmallIntegerField(default=20)
    margin_multiple = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    auto_unfreeze = models.BooleanField(default=False)
    # Increases with every change a webhook receiver could see, so stale events can be dropped.
    version = models.PositiveIntegerField(default=1)
    valid_from = models.DateField()
    valid_to = models.DateField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company"], condition=Q(status__in=LIVE_LINE_STATES), name="funding_one_live_line_per_company"
            ),
            models.CheckConstraint(
                condition=Q(reserved__gte=0) & Q(outstanding__gte=0) & Q(approved_limit__gte=0)
                & Q(effective_limit__gte=0),
                name="funding_line_counters_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(effective_limit__lte=F("approved_limit")), name="funding_line_effective_within_approved"
            ),
            models.CheckConstraint(
                condition=Q(limit_ceiling__gte=F("effective_limit")), name="funding_line_ceiling_covers_limit"
            ),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("limit_ceiling") - F("outstanding")), name="funding_line_within_limit"
            ),
            models.CheckConstraint(condition=Q(valid_to__gte=F("valid_from")), name="funding_line_valid_period"),
        ]

    def __str__(self) -> str:
        return f"{self.company.code} line #{self.pk}"

    @property
    def available(self):
        return max(self.effective_limit - self.reserved - self.outstanding, 0)

    @transition(field=status, source=CreditLineStatus.DRAFT, target=CreditLineStatus.PENDING_APPROVAL)
    def submit(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.PENDING_APPROVAL, target=CreditLineStatus.ACTIVE)
    def approve(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.PENDING_APPROVAL, target=CreditLineStatus.REJECTED)
    def reject(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.ACTIVE, target=CreditLineStatus.FROZEN)
    def freeze(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.FROZEN, target=CreditLineStatus.ACTIVE)
    def unfreeze(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.ACTIVE, target=CreditLineStatus.SUSPENDED)
    def suspend(self) -> None:
        pass

    @transition(field=status, source=CreditLineStatus.SUSPENDED, target=CreditLineStatus.ACTIVE)
    def resume(self) -> None:
        pass

    @transition(
        field=status,
        source=[
            CreditLineStatus.DRAFT,
            CreditLineStatus.PENDING_APPROVAL,
            CreditLineStatus.ACTIVE,
            CreditLineStatus.FROZEN,
            CreditLineStatus.SUSPENDED,
        ],
        target=CreditLineStatus.EXPIRED,
    )
    def expire(self) -> None:
        pass


class ChangeRequestKind(models.TextChoices):
    APPROVE_LINE = "approve_line", "Approve a new credit line"
    CHANGE_TERMS = "change_terms", "Change limit or terms"
    UNFREEZE = "unfreeze", "Unfreeze"
    RESUME = "resume", "Resume a suspended line"


class ChangeRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class CreditLineChangeRequest(FSMModelMixin, models.Model):
    """A maker's proposal; a different staff member (the checker) approves or rejects it."""

    credit_line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="change_requests")
    kind = models.CharField(max_length=24, choices=ChangeRequestKind.choices)
    status = FSMField(default=ChangeRequestStatus.PENDING, choices=ChangeRequestStatus.choices, protected=True)
    proposed = models.JSONField(default=dict, blank=True)
    current = models.JSONField(default=dict, blank=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    maker_reason = models.TextField()
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checker_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["credit_line", "kind"],
                condition=Q(status="pending"),
                name="funding_one_pending_request_per_kind",
            ),
            models.CheckConstraint(condition=~Q(checker=F("maker")), name="funding_checker_is_not_maker"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.credit_line_id} ({self.status})"

    @transition(field=status, source=ChangeRequestStatus.PENDING, target=ChangeRequestStatus.APPROVED)
    def mark_approved(self) -> None:
        pass

    @transition(field=status, source=ChangeRequestStatus.PENDING, target=ChangeRequestStatus.REJECTED)
    def mark_rejected(self) -> None:
        pass

    @transition(field=status, source=ChangeRequestStatus.PENDING, target=ChangeRequestStatus.WITHDRAWN)
    def mark_withdrawn(self) -> None:
        pass


