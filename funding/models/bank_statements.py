"""The bank's statement of the companies' accounts (settlement and margin): each booked movement is imported
once (unique reference). Money arriving here is the company's own funds and the base of its flow limit."""

from django.db import models

from funding.models.common import MONEY


class BankStatementImport(models.Model):
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    imported_by = models.CharField(max_length=150, help_text="username or command")
    lines_total = models.PositiveIntegerField(default=0)
    lines_imported = models.PositiveIntegerField(default=0)
    lines_skipped = models.PositiveIntegerField(default=0)
    lines_rejected = models.PositiveIntegerField(default=0)
    credits_total = models.DecimalField(**MONEY, default=0)
    debits_total = models.DecimalField(**MONEY, default=0)
    rejections = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.started_at:%Y-%m-%d %H:%M})"


class StatementDirection(models.TextChoices):
    CREDIT = "C", "Credit"
    DEBIT = "D", "Debit"


class BankStatementLine(models.Model):
    """One imported movement; written in the same transaction as its ledger posting."""

    statement = models.ForeignKey(BankStatementImport, on_delete=models.PROTECT, related_name="lines")
    line_no = models.PositiveIntegerField()
    reference = models.CharField(max_length=64, unique=True)
    value_date = models.DateField(db_index=True)
    account_no = models.CharField(max_length=34)
    account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=1, choices=StatementDirection.choices)
    amount = models.DecimalField(**MONEY)
    counterparty = models.CharField(max_length=200, blank=True, default="")
    memo = models.CharField(max_length=255, blank=True, default="")
    # None for a line of the bank's own clearing account (BANK_CLEARING_ACCOUNT_NO): it is not booked but
    # reconciled against the clearing account's ledger movements.
    journal = models.OneToOneField(
        "ledger.JournalTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["statement", "line_no"]
        indexes = [models.Index(fields=["account", "value_date"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="funding_statement_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.direction} {self.amount}"
