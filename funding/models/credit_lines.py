"""Credit lines and their four-eyes change requests."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

from funding.models.common import MONEY, RATE
from funding.models.companies import Company

DEFAULT_THRESHOLDS = ("0.80", "0.95")


def default_thresholds() -> list[Decimal]:
    return [Decimal(t) for t in DEFAULT_THRESHOLDS]


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
    # Daily cap (contract 1.7): the line's part of the advances accepted on one business date never exceeds
    # it. `advanced_today` counts for `advanced_on` only (a hold on a later date starts from zero); like
    # limit_ceiling, `daily_cap_ceiling` is the cap, or today's advanced amount when the cap was cut below it.
    daily_cap = models.DecimalField(**MONEY, null=True, blank=True)
    daily_cap_ceiling = models.DecimalField(**MONEY, null=True, blank=True)
    advanced_today = models.DecimalField(**MONEY, default=0)
    advanced_on = models.DateField(null=True, blank=True)
    # credit_line.threshold_reached is sent once per business date when utilisation first reaches each.
    limit_thresholds = ArrayField(models.DecimalField(max_digits=3, decimal_places=2), default=default_thresholds,
                                  blank=True)
    thresholds_on = models.DateField(null=True, blank=True)
    thresholds_reached = ArrayField(models.DecimalField(max_digits=3, decimal_places=2), default=list, blank=True)
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
            models.CheckConstraint(
                condition=(Q(daily_cap__isnull=True) & Q(daily_cap_ceiling__isnull=True))
                | (Q(daily_cap__gte=0) & Q(daily_cap_ceiling__isnull=False)
                   & Q(daily_cap_ceiling__gte=F("daily_cap")) & Q(advanced_today__lte=F("daily_cap_ceiling"))),
                name="funding_line_within_daily_cap",
            ),
            models.CheckConstraint(condition=Q(advanced_today__gte=0), name="funding_line_advanced_today_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.company.code} line #{self.pk}"

    @property
    def available(self):
        """Of the exposure limit only; `available_on` also applies the daily cap."""
        return max(self.effective_limit - self.reserved - self.outstanding, 0)

    def advanced_on_date(self, business_date) -> Decimal:
        return self.advanced_today if self.advanced_on == business_date else Decimal("0.00")

    def daily_remaining(self, business_date) -> Decimal | None:
        if self.daily_cap is None:
            return None
        return max(self.daily_cap - self.advanced_on_date(business_date), Decimal("0.00"))

    def available_on(self, business_date) -> Decimal:
        """What an advance on `business_date` may still take from the line: the exposure limit's room, bounded
        by the daily cap's (contract 1.7)."""
        remaining = self.daily_remaining(business_date)
        return self.available if remaining is None else min(self.available, remaining)

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

    # End of day, for a line past its valid_to (a draft never outlives the transaction that submits it).
    @transition(
        field=status,
        source=[
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




class LimitFactorTrigger(models.TextChoices):
    APPROVAL = "approval", "Line approved"
    LIMIT_CHANGE = "limit_change", "Limit or factor terms changed"
    END_OF_DAY = "end_of_day", "End of day"
    MARGIN_SETOFF = "margin_setoff", "Margin set off against overdue debt"


class LimitFactorSnapshot(models.Model):
    """One computation of a line's effective limit with every factor's inputs: the history behind each limit.

    Append-only (a trigger refuses UPDATE and DELETE): written at approval, at every approved change of the
    limit or its factors, and by each end of day.
    """

    credit_line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="factor_snapshots",
                                    db_index=False)
    as_of = models.DateField(help_text="the business date whose data the factors were computed from")
    trigger = models.CharField(max_length=16, choices=LimitFactorTrigger.choices)
    approved_limit = models.DecimalField(**MONEY)
    effective_limit = models.DecimalField(**MONEY)
    # As GET /api/v1/credit-line shows them: [{"factor", "value", "multiple", "base", "as_of", ...}]
    factors = models.JSONField(default=list)
    change_request = models.ForeignKey(CreditLineChangeRequest, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["credit_line", "-created_at"], name="funding_limit_snapshot_line")]

    def __str__(self) -> str:
        return f"line {self.credit_line_id} {self.effective_limit} as of {self.as_of} ({self.trigger})"
