"""Payment companies: the bank's customers that ask for advances."""

from django.db import models
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


