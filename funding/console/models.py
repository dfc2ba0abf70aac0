"""Console-only tables: a holder for the staff permissions that belong to no model, and login failures."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ConsolePermissions(models.Model):
    """No table: it only carries the custom permissions the roles are made of (see roles.py)."""

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = _("console permission")
        permissions = [
            ("view_dashboard", "Can view the console dashboard"),
            ("view_reports", "Can view and download reports"),
            ("view_audit", "Can view the audit trail"),
            ("propose_credit_change", "Can propose companies, credit lines and changes (maker)"),
            ("approve_credit_change", "Can approve or reject credit change requests (checker)"),
            ("freeze_credit_line", "Can freeze a credit line"),
            ("resolve_manual_review", "Can resolve manual-review payouts"),
            ("redeliver_webhook", "Can redeliver webhook events"),
            ("rerun_job", "Can rerun a failed job for a date"),
            ("upload_statement", "Can upload bank and channel statements"),
            ("reconcile_statement", "Can resolve reconciliation exceptions"),
            ("revoke_api_key", "Can revoke a payment company's API key"),
            ("propose_calendar", "Can propose a calendar year or a calendar-day change (maker)"),
            ("approve_calendar", "Can publish a proposed calendar year or apply a day change (checker)"),
            ("propose_channel_change", "Can propose channel and error-map changes (maker)"),
            ("approve_channel_change", "Can apply proposed channel and error-map changes (checker)"),
            ("suspend_company", "Can suspend a payment company"),
            ("propose_payout_return", "Can propose booking a returned payout (maker)"),
            ("approve_payout_return", "Can approve or reject a proposed payout return (checker)"),
            ("propose_write_off", "Can propose writing off a reconciliation exception (maker)"),
            ("approve_write_off", "Can approve or reject a proposed write-off (checker)"),
            ("propose_margin_setoff", "Can propose setting a company's margin off against its overdue debt (maker)"),
            ("approve_margin_setoff", "Can approve or reject a margin set-off (checker)"),
        ]

    def __str__(self) -> str:
        return "console permissions"


class LoginFailure(models.Model):
    """One failed staff login; the throttle counts recent rows per username and per address."""

    username = models.CharField(max_length=150, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("login failure")

    def __str__(self) -> str:
        return f"{self.username} {self.ip_address or '-'} {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class LoginThrottle(models.Model):
    """A login attempt counter for one key (a username at an address, or an address), in a fixed window.

    Changed only by one INSERT ... ON CONFLICT DO UPDATE ... RETURNING (funding.console.throttle), so
    concurrent attempts can never both see room under the limit.
    """

    key = models.CharField(max_length=250, unique=True)
    window_started = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        verbose_name = _("login throttle counter")

    def __str__(self) -> str:
        return f"{self.key} {self.count}"
