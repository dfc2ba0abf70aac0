"""Payment companies, credit lines with four-eyes changes, advances, the business date and calendar, audit."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import RawSQL
from django_fsm import FSMField, FSMModelMixin, transition
from ulid import ULID

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}
RATE = {"max_digits": 12, "decimal_places": settings.RATE_DECIMAL_PLACES}


def new_public_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def new_advance_id() -> str:
    return new_public_id("adv")


class CompanyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Company(FSMModelMixin, models.Model):
    code = models.CharField(max_length=32, unique=True)
    legal_name = models.CharField(max_length=200)
    status = FSMField(default=CompanyStatus.ACTIVE, choices=CompanyStatus.choices, protected=True)
    settlement_account_no = models.CharField(max_length=34, unique=True)
    margin_account_no = models.CharField(max_length=34, unique=True, null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @transition(field=status, source=CompanyStatus.ACTIVE, target=CompanyStatus.SUSPENDED)
    def suspend(self) -> None:
        pass

    @transition(field=status, source=CompanyStatus.SUSPENDED, target=CompanyStatus.ACTIVE)
    def reactivate(self) -> None:
        pass


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


class AuditEvent(models.Model):
    """Append-only (a trigger refuses UPDATE and DELETE): who or which job did what, when, from, to, why."""

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="username, API key id, or job name")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["object_type", "object_id"])]
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_type}#{self.object_id}"


class BusinessDay(models.Model):
    """The engine's current business date: one row, moved only by the end-of-day job."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    current = models.DateField()
    closing = models.BooleanField(default=False, help_text="end of day is running: new advances are refused")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(singleton=True), name="funding_business_day_singleton")]

    def __str__(self) -> str:
        return self.current.isoformat()


class CalendarDayKind(models.TextChoices):
    WORKDAY = "workday", "Working day"
    WEEKEND = "weekend", "Weekend"
    HOLIDAY = "holiday", "Public holiday"
    MAKEUP_WORKDAY = "makeup_workday", "Make-up working day (调休)"


class CalendarYear(models.Model):
    """A year counts as published only when its holidays and make-up days are known; no guessing beyond."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    published = models.BooleanField(default=False)
    source = models.CharField(max_length=100)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return str(self.year)


class CalendarDay(models.Model):
    date = models.DateField(primary_key=True)
    kind = models.CharField(max_length=16, choices=CalendarDayKind.choices)
    is_business_day = models.BooleanField()
    name = models.CharField(max_length=100, blank=True, default="")
    source = models.CharField(max_length=100, default="chinese-calendar")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.kind}"


class AdvanceStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    DISBURSING = "disbursing", "Disbursing"
    DISBURSED = "disbursed", "Disbursed"
    PARTIALLY_DISBURSED = "partially_disbursed", "Partially disbursed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REPAID = "repaid", "Repaid"
    OVERDUE = "overdue", "Overdue"


class Advance(FSMModelMixin, models.Model):
    # Unique by a constraint, not unique=True: the latter adds a LIKE index no query uses (one more per insert).
    public_id = models.CharField(max_length=40, default=new_advance_id, editable=False)
    # No index of its own: the (company, ...) indexes below lead with it.
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="advances", db_index=False)
    credit_line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="advances")
    external_id = models.CharField(max_length=64)
    status = FSMField(default=AdvanceStatus.RESERVED, choices=AdvanceStatus.choices, protected=True)
    currency = models.CharField(max_length=3, default=settings.ENGINE_CURRENCY)
    amount = models.DecimalField(**MONEY)
    own_funds_amount = models.DecimalField(**MONEY, default=0)
    advanced_amount = models.DecimalField(**MONEY, default=0)
    # Of the payouts that succeeded: the whole, and the part the bank funded (the fee base).
    disbursed_amount = models.DecimalField(**MONEY, default=0)
    advanced_disbursed = models.DecimalField(**MONEY, default=0)
    fee = models.DecimalField(**MONEY, default=0)
    daily_fee_rate = models.DecimalField(**RATE)
    business_date = models.DateField(db_index=True)
    due_date = models.DateField(db_index=True)
    principal_repaid = models.DecimalField(**MONEY, default=0)
    fee_repaid = models.DecimalField(**MONEY, default=0)
    penalty_accrued = models.DecimalField(**MONEY, default=0)
    penalty_repaid = models.DecimalField(**MONEY, default=0)
    # Penalty interest at the accrual scale; penalty_accrued is its quantized running total (nightly job).
    penalty_accrued_exact = models.DecimalField(max_digits=24, decimal_places=settings.ACCRUAL_DECIMAL_PLACES,
                                                default=0)
    overdue_since = models.DateField(null=True, blank=True)
    # Aging bucket of an overdue advance as of the last close ("1-3", "4-7", "8-30", ">30"), for reports.
    aging_bucket = models.CharField(max_length=8, blank=True, default="")
    # Increases with every change a webhook receiver could see, so stale events can be dropped.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="funding_advance_public_id_unique"),
            models.UniqueConstraint(fields=["company", "external_id"], name="funding_advance_external_id_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="funding_advance_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=F("own_funds_amount") + F("advanced_amount")), name="funding_advance_split_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(advanced_disbursed__lte=F("advanced_amount"))
                & Q(disbursed_amount__lte=F("amount"))
                & Q(principal_repaid__lte=F("advanced_disbursed"))
                & Q(fee_repaid__lte=F("fee"))
                & Q(penalty_repaid__lte=F("penalty_accrued")),
                name="funding_advance_amounts_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "-created_at"]),
            models.Index(fields=["status", "due_date"]),
            # The nightly jobs work per chunk of companies on their due or overdue advances.
            models.Index(fields=["company", "status", "due_date"], name="funding_adv_company_status_due"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.public_id

    @property
    def principal_outstanding(self):
        return self.advanced_disbursed - self.principal_repaid

    @property
    def outstanding_amount(self):
        return (
            self.advanced_disbursed - self.principal_repaid
            + self.fee - self.fee_repaid
            + self.penalty_accrued - self.penalty_repaid
        )

    @property
    def repaid_amount(self):
        return self.principal_repaid + self.fee_repaid + self.penalty_repaid

    @transition(field=status, source=AdvanceStatus.RESERVED, target=AdvanceStatus.DISBURSING)
    def start_disbursing(self) -> None:
        pass

    @transition(field=status, source=AdvanceStatus.RESERVED, target=AdvanceStatus.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=status, source=AdvanceStatus.DISBURSING, target=AdvanceStatus.DISBURSED)
    def mark_disbursed(self) -> None:
        pass

    @transition(field=status, source=AdvanceStatus.DISBURSING, target=AdvanceStatus.PARTIALLY_DISBURSED)
    def mark_partially_disbursed(self) -> None:
        pass

    @transition(field=status, source=AdvanceStatus.DISBURSING, target=AdvanceStatus.FAILED)
    def mark_failed(self) -> None:
        pass

    @transition(
        field=status,
        source=[AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED, AdvanceStatus.OVERDUE],
        target=AdvanceStatus.REPAID,
    )
    def mark_repaid(self) -> None:
        pass

    @transition(
        field=status,
        source=[AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED],
        target=AdvanceStatus.OVERDUE,
    )
    def mark_overdue(self) -> None:
        pass


# Source states of the set-based transitions the nightly jobs run (they must match the FSM above).
ADVANCE_DUE_STATES = [AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED]
ADVANCE_REPAYABLE_STATES = [AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED, AdvanceStatus.OVERDUE]


class WebhookEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookEvent(FSMModelMixin, models.Model):
    """Transactional outbox: written in the same transaction as the change it reports, delivered by Celery."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="webhook_events")
    type = models.CharField(max_length=48)
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=40)
    resource_version = models.PositiveIntegerField()
    payload = models.JSONField()
    status = FSMField(default=WebhookEventStatus.PENDING, choices=WebhookEventStatus.choices, protected=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The writing transaction's id (PostgreSQL xid8). GET /api/v1/events pages by (written_xact, id) and shows
    # only events of transactions older than every one still running, so a page never skips an event that
    # commits later (funding/api/selectors.py event_list).
    written_xact = models.BigIntegerField(db_default=RawSQL("pg_current_xact_id()::text::bigint", ()), editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["company", "written_xact", "id"], name="webhookevent_company_xact"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @transition(field=status, source=WebhookEventStatus.PENDING, target=WebhookEventStatus.DELIVERED)
    def mark_delivered(self) -> None:
        pass

    @transition(field=status, source=WebhookEventStatus.PENDING, target=WebhookEventStatus.FAILED)
    def mark_failed(self) -> None:
        pass

    @transition(field=status, source=WebhookEventStatus.FAILED, target=WebhookEventStatus.PENDING)
    def redeliver(self) -> None:
        pass
