from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class StatementSource(models.TextChoices):
    ADAPTER = "adapter", "Fetched from the channel adapter"
    CSV = "csv", "Uploaded CSV"


class ChannelStatement(models.Model):
    """One channel's statement for one day. Importing it again refreshes its lines (idempotent by serial)."""

    channel = models.ForeignKey("settlement.Channel", on_delete=models.PROTECT, related_name="statements")
    statement_date = models.DateField()
    source = models.CharField(max_length=16, choices=StatementSource.choices)
    imported_at = models.DateTimeField(auto_now=True)
    imported_by = models.CharField(max_length=150, blank=True, default="")
    row_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-statement_date", "channel__code"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "statement_date"], name="settlement_statement_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.statement_date}"


class ReconClass(models.TextChoices):
    MATCHED = "matched", "Matched"
    MISSING_ON_OUR_SIDE = "missing_on_our_side", "Missing on our side"
    MISSING_IN_STATEMENT = "missing_in_statement", "Missing in statement"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    STATUS_MISMATCH = "status_mismatch", "Status mismatch"


class ReconciliationItem(models.Model):
    """One serial compared between a channel statement and our attempts. Not matched: an exception."""

    statement = models.ForeignKey(ChannelStatement, on_delete=models.CASCADE, related_name="items")
    serial = models.CharField(max_length=64)
    attempt = models.ForeignKey(
        "settlement.PayoutAttempt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reconciliation_items",
    )
    statement_amount = models.DecimalField(**MONEY, null=True, blank=True)
    statement_status = models.CharField(max_length=16, blank=True, default="")
    statement_code = models.CharField(max_length=64, blank=True, default="")
    our_amount = models.DecimalField(**MONEY, null=True, blank=True)
    our_status = models.CharField(max_length=16, blank=True, default="")
    classification = models.CharField(max_length=24, choices=ReconClass.choices)
    resolved_attempt = models.BooleanField(default=False, help_text="this line resolved an unknown attempt")
    booked_return = models.BooleanField(default=False, help_text="this line booked the return of its payout")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["statement_id", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "serial"], name="settlement_recon_item_unique"),
        ]
        indexes = [models.Index(fields=["classification"])]

    def __str__(self) -> str:
        return f"{self.serial} {self.classification}"


class ExceptionSource(models.TextChoices):
    CHANNEL_STATEMENT = "channel_statement", "Channel statement line"
    BANK_CLEARING_LINE = "bank_clearing_line", "Bank clearing statement line"
    BANK_CLEARING_LEDGER = "bank_clearing_ledger", "Bank clearing ledger movement"


class ExceptionStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    WRITTEN_OFF = "written_off", "Written off"


# Classes of the bank clearing reconciliation (the channel's are ReconClass).
UNMATCHED_STATEMENT_LINE = "unmatched_statement_line"
UNMATCHED_LEDGER_MOVEMENT = "unmatched_ledger_movement"


class ReconciliationException(FSMModelMixin, models.Model):
    """One reconciliation difference in the staff work queue: open until one staff member resolves it with a
    reason, or until it is written off under four eyes (a maker proposes, a different checker approves).

    `key` names the difference (one row per channel statement line, bank clearing line or clearing ledger
    entry), so a reconciliation that runs again never opens it twice. The row keeps its own copy of what
    differed: a later import may replace the statement item it came from.

    `adjustment` is what a write-off posts on `ledger_account`: positive debits it, negative credits it,
    with the reconciliation-difference account as the other leg; 0.00 posts nothing.
    """

    key = models.CharField(max_length=160, unique=True)
    source = models.CharField(max_length=24, choices=ExceptionSource.choices)
    classification = models.CharField(max_length=32)
    item = models.ForeignKey(
        ReconciliationItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions"
    )
    bank_line = models.ForeignKey(
        "funding.BankStatementLine", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entry = models.ForeignKey("ledger.Entry", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel_code = models.CharField(max_length=32, blank=True, default="")
    value_date = models.DateField()
    reference = models.CharField(max_length=120, help_text="serial, statement reference or journal reference")
    statement_amount = models.DecimalField(**MONEY, null=True, blank=True)
    statement_status = models.CharField(max_length=16, blank=True, default="")
    ledger_amount = models.DecimalField(**MONEY, null=True, blank=True)
    our_status = models.CharField(max_length=16, blank=True, default="")
    ledger_account = models.ForeignKey(
        "ledger.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    adjustment = models.DecimalField(**MONEY, default=0)
    description = models.CharField(max_length=255, blank=True, default="")
    status = FSMField(
        max_length=16, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN, protected=True
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_by_label = models.CharField(max_length=150, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_reason = models.TextField(blank=True, default="")
    write_off_proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    write_off_proposed_at = models.DateTimeField(null=True, blank=True)
    write_off_reason = models.TextField(blank=True, default="")
    written_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    written_off_at = models.DateTimeField(null=True, blank=True)
    write_off_journal = models.OneToOneField(
        "ledger.JournalTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["status", "opened_at", "id"]
        indexes = [models.Index(fields=["status", "opened_at"], name="settlement_recon_exc_queue")]
        constraints = [
            # The database backs the service's four-eyes rule.
            models.CheckConstraint(
                condition=Q(written_off_by__isnull=True) | ~Q(written_off_by=F("write_off_proposed_by")),
                name="settlement_recon_exc_four_eyes",
            ),
            models.CheckConstraint(
                condition=~Q(status="written_off")
                | (Q(written_off_by__isnull=False) & Q(write_off_proposed_by__isnull=False)),
                name="settlement_recon_exc_written_off_by",
            ),
            models.CheckConstraint(
                condition=~Q(status="resolved") | ~Q(resolution_reason=""),
                name="settlement_recon_exc_resolved_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.reference} {self.classification} ({self.status})"

    @transition(field=status, source=ExceptionStatus.OPEN, target=ExceptionStatus.RESOLVED)
    def resolve(self) -> None:
        """Explained by staff (or matched by a later import)."""

    @transition(field=status, source=ExceptionStatus.OPEN, target=ExceptionStatus.WRITTEN_OFF)
    def write_off(self) -> None:
        """The checker approved the maker's write-off; the difference is posted."""
