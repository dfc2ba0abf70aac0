"""Staff roles as Django groups with exact permissions, defined once here.

`ROLES` maps a group name to {"app_label.model": [permission, ...]}. A permission is either a model action
("view", "add", "change", "delete", expanded to "<action>_<model>") or a custom codename of that model.
`roles_sync()` makes every group hold exactly these permissions (adding and removing), so a new model is
given to a role by editing this dict; the post_migrate hook applies it after every `migrate`.

Four eyes: the maker roles propose (credit_officer: companies, lines, changes, margin set-offs; operations:
calendar years and days, channel changes, payout returns; finance: write-offs of reconciliation exceptions); the
checker role (credit_approver) approves, rejects, publishes and freezes but holds no permission to initiate
anything (no add_* and no propose_*). The services refuse a checker who is the maker, and a CHECK constraint on
each request table refuses it again in the database.
"""

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS, transaction

from funding.console.errors import PermissionDenied

MODEL_ACTIONS = ("view", "add", "change", "delete")
CONSOLE = "console.consolepermissions"

CREDIT_OFFICER = "credit_officer"
CREDIT_APPROVER = "credit_approver"
OPERATIONS = "operations"
FINANCE = "finance"
AUDITOR = "auditor"

# Every model a staff member may look at. The auditor sees all of them; nobody else sees login failures.
ENGINE_MODELS = [
    "funding.company",
    "funding.creditline",
    "funding.creditlinechangerequest",
    "funding.limitfactorsnapshot",
    "funding.companychangerequest",
    "funding.auditevent",
    "funding.businessday",
    "funding.calendaryear",
    "funding.calendarday",
    "funding.calendarchangerequest",
    "funding.advance",
    "funding.webhookevent",
    "ledger.account",
    "ledger.journaltransaction",
    "ledger.entry",
    "settlement.channel",
    "settlement.channelerrormapping",
    "settlement.channelchangerequest",
    "funding.payout",
    "settlement.payoutattempt",
    "settlement.manualreview",
    "settlement.payoutreturn",
    "settlement.payoutreturnrequest",
    "settlement.channelstatement",
    "settlement.reconciliationitem",
    "settlement.reconciliationexception",
    "settlement.integritycheckrun",
    "settlement.simulatedchanneltransfer",
    "settlement.jobrun",
    "funding.agingsnapshot",
    "settlement.repayment",
    "settlement.repaymentallocation",
    "settlement.marginsetoff",
    "funding.penaltyaccrual",
    "funding.bankstatementimport",
    "funding.bankstatementline",
    # API keys and webhook endpoints: their admin shows metadata only, never the secret or its ciphertext.
    "api.apikey",
    "api.webhookendpoint",
    "api.webhookoutboxevent",
    "api.webhookdeliveryattempt",
]
STAFF_DIRECTORY = ["auth.user", "auth.group", "auth.permission", "console.loginfailure"]

_CALENDAR_VIEW = {
    "funding.businessday": ["view"],
    "funding.calendaryear": ["view"],
    "funding.calendarday": ["view"],
    "funding.calendarchangerequest": ["view"],
}

ROLES: dict[str, dict[str, list[str]]] = {
    CREDIT_OFFICER: {
        "funding.company": ["view", "add", "change"],
        "funding.creditline": ["view", "add"],
        "funding.creditlinechangerequest": ["view", "add"],
        "funding.limitfactorsnapshot": ["view"],
        "funding.companychangerequest": ["view"],
        "funding.advance": ["view"],
        "funding.auditevent": ["view"],
        **_CALENDAR_VIEW,
        "settlement.repayment": ["view"],
        "settlement.repaymentallocation": ["view"],
        "funding.penaltyaccrual": ["view"],
        "funding.agingsnapshot": ["view"],
        # Proposing a margin set-off (four eyes: a credit approver applies it).
        "settlement.marginsetoff": ["view", "add"],
        CONSOLE: ["view_dashboard", "propose_credit_change", "propose_margin_setoff"],
    },
    CREDIT_APPROVER: {
        "funding.company": ["view"],
        "funding.creditline": ["view"],
        "funding.creditlinechangerequest": ["view"],
        "funding.limitfactorsnapshot": ["view"],
        "funding.companychangerequest": ["view"],
        "funding.advance": ["view"],
        "funding.auditevent": ["view"],
        **_CALENDAR_VIEW,
        "settlement.repayment": ["view"],
        "settlement.repaymentallocation": ["view"],
        "funding.penaltyaccrual": ["view"],
        "funding.agingsnapshot": ["view"],
        "settlement.channel": ["view"],
        "settlement.channelerrormapping": ["view"],
        "settlement.channelchangerequest": ["view"],
        "funding.payout": ["view"],
        "settlement.payoutreturn": ["view"],
        "settlement.payoutreturnrequest": ["view", "change"],
        # Checker of write-offs: sees the queue, approves or rejects what finance proposed.
        "settlement.reconciliationexception": ["view"],
        "settlement.marginsetoff": ["view"],
        CONSOLE: ["view_dashboard", "approve_credit_change", "freeze_credit_line", "approve_calendar",
                  "suspend_company", "approve_channel_change", "approve_payout_return", "approve_write_off",
                  "approve_margin_setoff"],
    },
    OPERATIONS: {
        "funding.company": ["view"],
        "funding.creditline": ["view"],
        "funding.advance": ["view"],
        "funding.webhookevent": ["view"],
        "funding.businessday": ["view"],
        "funding.calendaryear": ["view"],
        # Changing a day or publishing a year is a proposal (maker); a checker applies it (four eyes).
        "funding.calendarday": ["view", "change"],
        "funding.calendarchangerequest": ["view"],
        # Saving a channel or an error-map entry proposes it (four eyes: a checker applies it).
        "settlement.channel": ["view", "add", "change"],
        "settlement.channelerrormapping": ["view", "add", "change"],
        "settlement.channelchangerequest": ["view"],
        "funding.payout": ["view"],
        "settlement.payoutattempt": ["view"],
        # The review form is the only way to change a review; it calls the four-eyes services.
        "settlement.manualreview": ["view", "change"],
        # Returns (退汇) booked by staff: operations proposes (the request form), a checker approves.
        "settlement.payoutreturn": ["view"],
        "settlement.payoutreturnrequest": ["view", "add", "change"],
        "settlement.channelstatement": ["view"],
        "settlement.reconciliationitem": ["view"],
        "settlement.reconciliationexception": ["view"],
        "settlement.integritycheckrun": ["view"],
        "settlement.simulatedchanneltransfer": ["view"],
        "api.apikey": ["view"],
        "api.webhookendpoint": ["view"],
        "api.webhookoutboxevent": ["view"],
        "api.webhookdeliveryattempt": ["view"],
        "settlement.jobrun": ["view"],
        "funding.bankstatementimport": ["view"],
        CONSOLE: ["view_dashboard", "resolve_manual_review", "redeliver_webhook", "rerun_job",
                  "revoke_api_key", "propose_calendar", "propose_channel_change", "propose_payout_return"],
    },
    FINANCE: {
        "funding.company": ["view"],
        "funding.creditline": ["view"],
        "funding.advance": ["view"],
        **_CALENDAR_VIEW,
        "ledger.account": ["view"],
        "ledger.journaltransaction": ["view"],
        "ledger.entry": ["view"],
        "settlement.channel": ["view"],
        "settlement.channelerrormapping": ["view"],
        "funding.payout": ["view"],
        "settlement.payoutattempt": ["view"],
        "settlement.channelstatement": ["view"],
        "settlement.reconciliationitem": ["view"],
        "settlement.payoutreturn": ["view"],
        # The reconciliation work queue: resolve with a reason; a write-off is proposed here and approved by a
        # credit_approver (four eyes).
        "settlement.reconciliationexception": ["view"],
        "settlement.integritycheckrun": ["view"],
        "settlement.jobrun": ["view"],
        "settlement.repayment": ["view"],
        "settlement.repaymentallocation": ["view"],
        "funding.penaltyaccrual": ["view"],
        "funding.agingsnapshot": ["view"],
        "funding.bankstatementimport": ["view"],
        "funding.bankstatementline": ["view"],
        "settlement.marginsetoff": ["view"],
        CONSOLE: ["view_dashboard", "view_reports", "upload_statement", "reconcile_statement", "propose_write_off"],
    },
    AUDITOR: {
        **{model: ["view"] for model in ENGINE_MODELS + STAFF_DIRECTORY},
        CONSOLE: ["view_dashboard", "view_reports", "view_audit"],
    },
}


class RoleConfigurationError(Exception):
    pass


def role_permission_keys(role: str) -> set[tuple[str, str]]:
    """The (app_label, codename) pairs a role holds, from ROLES."""
    keys = set()
    for model_label, perms in ROLES[role].items():
        app_label, model_name = model_label.split(".")
        for perm in perms:
            codename = f"{perm}_{model_name}" if perm in MODEL_ACTIONS else perm
            keys.add((app_label, codename))
    return keys


def _ensure_permissions(apps: Any, using: str) -> None:
    # Permissions are normally created after all migrations; a data migration needs them now.
    for app_config in apps.get_app_configs():
        had_module = getattr(app_config, "models_module", None)
        app_config.models_module = had_module or True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            app_config.models_module = had_module


def roles_sync(
    *, apps: Any = global_apps, using: str = DEFAULT_DB_ALIAS, strict: bool = True
) -> dict[str, int]:
    """Create the groups and give each exactly the permissions of ROLES. Idempotent.

    `strict`: refuse a permission that does not exist (a typo in ROLES). The data migration passes False,
    because its historical model state lacks models added later; post_migrate then syncs strictly.
    Returns the number of permissions each group holds.
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    _ensure_permissions(apps, using)
    result = {}
    with transaction.atomic(using=using):
        for role in ROLES:
            wanted = role_permission_keys(role)
            found = {
                (p.content_type.app_label, p.codename): p
                for p in Permission.objects.using(using).select_related("content_type").filter(
                    codename__in={codename for _, codename in wanted}
                )
            }
            missing = sorted(wanted - set(found))
            if missing and strict:
                raise RoleConfigurationError(f"role {role}: no such permissions {missing}")
            group, _ = Group.objects.using(using).get_or_create(name=role)
            group.permissions.set([found[key] for key in sorted(wanted) if key in found])
            result[role] = group.permissions.count()
    return result


def roles_sync_after_migrate(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    roles_sync(using=using)


def require_permission(user: Any, perm: str) -> None:
    """Refuse (PermissionDenied, code permission_denied) unless an active staff user holds `perm`.

    `perm` is "app_label.codename"; a bare codename means a console permission ("approve_credit_change").
    """
    full = perm if "." in perm else f"console.{perm}"
    allowed = (
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(full)
    )
    if not allowed:
        raise PermissionDenied(details={"permission": full})
