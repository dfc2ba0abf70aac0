"""Double-entry ledger. PostgreSQL enforces its rules (see migrations/0002_ledger_rules.py):

- a journal transaction balances per currency and has at least two entries, checked at COMMIT;
- entry amounts are positive; entries and transactions are never updated or deleted;
- entries may only be added to a journal transaction created in the same database transaction;
- account totals are maintained by a trigger from the entries, so they cannot drift.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

MONEY = {"max_digits": settings.MONEY_MAX_DIGITS, "decimal_places": settings.MONEY_DECIMAL_PLACES}


class AccountType(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    INCOME = "income", "Income"
    EXPENSE = "expense", "Expense"
    EQUITY = "equity", "Equity"


DEBIT_NORMAL = (AccountType.ASSET, AccountType.EXPENSE)


class AccountKind(models.TextChoices):
    ADVANCE_RECEIVABLE = "advance_receivable", "Advance receivable"
    FEE_RECEIVABLE = "fee_receivable", "Fee receivable"
    PENALTY_RECEIVABLE = "penalty_receivable", "Penalty receivable"
    SETTLEMENT = "settlement", "Settlement account"
    MARGIN = "margin", "Margin deposit"
    PAYOUTS_IN_TRANSIT = "payouts_in_transit", "Payouts in transit"
    CHANNEL_CLEARING = "channel_clearing", "Channel clearing"
    FEE_INCOME = "fee_income", "Fee income"
    PENALTY_INCOME = "penalty_income", "Penalty income"
    CHANNEL_COST = "channel_cost", "Channel cost"
    BANK_CLEARING = "bank_clearing", "Bank clearing (funds received from outside)"
    RECONCILIATION_DIFFERENCE = "reconciliation_difference", "Reconciliation differences written off"


ACCOUNT_TYPE_OF_KIND = {
    AccountKind.ADVANCE_RECEIVABLE: AccountType.ASSET,
    AccountKind.FEE_RECEIVABLE: AccountType.ASSET,
    AccountKind.PENALTY_RECEIVABLE: AccountType.ASSET,
    AccountKind.SETTLEMENT: AccountType.LIABILITY,
    AccountKind.MARGIN: AccountType.LIABILITY,
    AccountKind.PAYOUTS_IN_TRANSIT: AccountType.LIABILITY,
    AccountKind.CHANNEL_CLEARING: AccountType.ASSET,
    AccountKind.FEE_INCOME: AccountType.INCOME,
    AccountKind.PENALTY_INCOME: AccountType.INCOME,
    AccountKind.CHANNEL_COST: AccountType.EXPENSE,
    AccountKind.BANK_CLEARING: AccountType.ASSET,
    # A loss written off is a debit, a gain a credit: the balance is the net cost of differences.
    AccountKind.RECONCILIATION_DIFFERENCE: AccountType.EXPENSE,
}


class Account(models.Model):
    """One ledger account. `owner` is the company or channel code for per-owner accounts, "" for the bank's own.

    Totals follow TigerBeetle: posted debits and credits, plus `debits_pending` for holds on the
    company's own funds. With `debits_must_not_exceed_credits` the database refuses a hold or a posting
    that would take a liability account below zero.
    """

    code = models.CharField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    type = models.CharField(max_length=16, choices=AccountType.choices)
    owner = models.CharField(max_length=64, blank=True, default="")
    currency = models.CharField(max_length=3, default=settings.ENGINE_CURRENCY)
    external_account_no = models.CharField(max_length=34, blank=True, default="", db_index=True)
    debits_posted = models.DecimalField(**MONEY, default=0)
    credits_posted = models.DecimalField(**MONEY, default=0)
    debits_pending = models.DecimalField(**MONEY, default=0)
    debits_must_not_exceed_credits = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "owner", "currency"], name="ledger_account_one_per_kind_owner"),
            models.CheckConstraint(
                condition=Q(debits_posted__gte=0) & Q(credits_posted__gte=0) & Q(debits_pending__gte=0),
                name="ledger_account_totals_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(debits_must_not_exceed_credits=False)
                | Q(credits_posted__gte=F("debits_posted") + F("debits_pending")),
                name="ledger_account_no_overdraft",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def balance(self):
        """Signed by the account's normal side: positive means what an accountant expects."""
        if self.type in DEBIT_NORMAL:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    @property
    def available(self):
        """What a liability account's owner can still draw: balance less pending holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class JournalTransaction(models.Model):
    kind = models.CharField(max_length=48)
    description = models.CharField(max_length=255, blank=True, default="")
    business_date = models.DateField()
    # The idempotency key of the posting ("advance:12:fee"): a second posting of the same fact is refused.
    reference = models.CharField(max_length=120)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    # Set by the database (txid_current()); entries may only join a transaction of the same xact.
    posted_xact = models.BigIntegerField(editable=False, null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # A constraint, not unique=True: no varchar_pattern_ops twin that no query uses (written per journal).
        constraints = [models.UniqueConstraint(fields=["reference"], name="ledger_journal_reference_unique")]
        indexes = [models.Index(fields=["business_date", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class EntryDirection(models.TextChoices):
    DEBIT = "D", "Debit"
    CREDIT = "C", "Credit"


class Entry(models.Model):
    transaction = models.ForeignKey(JournalTransaction, on_delete=models.PROTECT, related_name="entries")
    # Lookups by account use the (account, transaction) index it leads.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", db_index=False)
    direction = models.CharField(max_length=1, choices=EntryDirection.choices)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)

    class Meta:
        verbose_name_plural = "entries"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_entry_amount_positive"),
            models.CheckConstraint(condition=Q(direction__in=["D", "C"]), name="ledger_entry_direction_valid"),
        ]
        indexes = [models.Index(fields=["account", "transaction"])]

    def __str__(self) -> str:
        return f"{self.direction} {self.amount} {self.currency} {self.account_id}"
