"""Advances: what a company asked the bank to pay today, and what it owes for it."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

from config.fsm import transition_sources
from funding.models.common import MONEY, RATE, new_public_id
from funding.models.companies import Company
from funding.models.credit_lines import CreditLine


def new_advance_id() -> str:
    return new_public_id("adv")


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
    # Sum of the payouts returned by the beneficiaries' banks (contract 1.7); no longer part of disbursed_amount.
    returned_amount = models.DecimalField(**MONEY, default=0, db_default=0)
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

    # What the advance owes and repaid: the one definition is funding.selectors (OUTSTANDING_PARTS).
    @property
    def principal_outstanding(self):
        from funding.selectors import advance_outstanding

        return advance_outstanding(self, parts=("principal",))

    @property
    def outstanding_amount(self):
        from funding.selectors import advance_outstanding

        return advance_outstanding(self)

    @property
    def repaid_amount(self):
        from funding.selectors import advance_repaid

        return advance_repaid(self)

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
        source=[AdvanceStatus.DISBURSED, AdvanceStatus.PARTIALLY_DISBURSED, AdvanceStatus.DISBURSING],
        target=AdvanceStatus.OVERDUE,
    )
    def mark_overdue(self) -> None:
        """Due and not repaid. A `disbursing` advance is due for what its succeeded payouts paid (contract
        1.7: "due for what actually left the bank"), so it goes overdue too when that part is not repaid."""

    @transition(field=status, source=AdvanceStatus.OVERDUE, target=AdvanceStatus.DISBURSING)
    def clear_overdue(self) -> None:
        """Everything due was repaid while a payout's outcome is still unknown: nothing is overdue any more,
        and the advance is back to `disbursing` until that payout is final (then disbursed, partially
        disbursed, or failed; what it paid is due at the next collection)."""


# Source states of the set-based transitions the jobs run, read from the FSM above.
# mark_overdue: also a `disbursing` advance whose succeeded payouts' part is due and unpaid.
ADVANCE_DUE_STATES = transition_sources(Advance.mark_overdue, wildcards=False)
# mark_repaid: only advances whose payouts are all final (an open payout may still add to what is owed).
ADVANCE_REPAYABLE_STATES = transition_sources(Advance.mark_repaid, wildcards=False)
ADVANCE_CLEARABLE_STATES = transition_sources(Advance.clear_overdue, wildcards=False)
# What repayment collection takes money for: every advance owing what its succeeded payouts paid, including
# one still `disbursing` (another payout's outcome unknown) - mark_repaid's sources plus `disbursing`.
ADVANCE_COLLECTABLE_STATES = [*ADVANCE_REPAYABLE_STATES, AdvanceStatus.DISBURSING]
# Advances whose payouts may still be open (sent, pending a retry, unknown, in manual review): the outcomes
# of those payouts are taken into the advance (advance_finish_disbursement) in these states.
ADVANCE_OPEN_PAYOUT_STATES = [AdvanceStatus.RESERVED, AdvanceStatus.DISBURSING, AdvanceStatus.OVERDUE]


