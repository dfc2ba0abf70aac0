"""Payment companies: the bank's customers that ask for advances."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition


class CompanyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Company(FSMModelMixin, models.Model):
    code = models.CharField(max_length=32, unique=True)
    legal_name = models.CharField(max_length=200)
    status = FSMField(default=CompanyStatus.ACTIVE, choices=CompanyStatus.choices, protected=True)
    settlement_account_no = models.CharField(max_length=34, unique=True)
    margin_account_no = models.CharField(max_length=34, unique=True, null=True, blank=True)
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




class CompanyChangeKind(models.TextChoices):
    REACTIVATE = "reactivate", "Reactivate a suspended company"


class CompanyChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class CompanyChangeRequest(FSMModelMixin, models.Model):
    """A maker's proposal about a company (its reactivation); a different staff member decides it.

    Suspending acts at once (it reduces risk); lifting it needs four eyes, like unfreezing a line.
    """

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="change_requests")
    kind = models.CharField(max_length=16, choices=CompanyChangeKind.choices)
    status = FSMField(default=CompanyChangeStatus.PENDING, choices=CompanyChangeStatus.choices, protected=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    maker_reason = models.TextField()
    checker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checker_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "kind"], condition=Q(status="pending"),
                                    name="funding_one_pending_company_request"),
            models.CheckConstraint(condition=~Q(checker=F("maker")), name="funding_company_checker_is_not_maker"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.company_id} ({self.status})"

    @transition(field=status, source=CompanyChangeStatus.PENDING, target=CompanyChangeStatus.APPROVED)
    def mark_approved(self) -> None:
        pass

    @transition(field=status, source=CompanyChangeStatus.PENDING, target=CompanyChangeStatus.REJECTED)
    def mark_rejected(self) -> None:
        pass
