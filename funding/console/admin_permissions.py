"""Admin actions guarded by the console's role permissions (roles.py), not by model change permissions.

`@admin.action(permissions=["approve_credit_change"])` makes Django call
`has_approve_credit_change_permission`,
so an action is offered only to the roles holding that permission; `action_refused` checks again through
`require_permission` when the action runs (a crafted POST gets a clear message, nothing changes).
"""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission

CONSOLE_ACTION_PERMISSIONS = (
    "propose_credit_change",
    "approve_credit_change",
    "freeze_credit_line",
    "resolve_manual_review",
    "redeliver_webhook",
    "upload_statement",
    "revoke_api_key",
    "propose_calendar",
    "approve_calendar",
    "propose_channel_change",
    "approve_channel_change",
    "suspend_company",
    "reconcile_statement",
    "propose_write_off",
    "approve_write_off",
    "propose_margin_setoff",
    "approve_margin_setoff",
)


def _checker(codename: str) -> Callable[[Any, HttpRequest], bool]:
    def has_permission(self: Any, request: HttpRequest, obj: Any = None) -> bool:
        try:
            require_permission(request.user, codename)
        except PermissionDenied:
            return False
        return True

    has_permission.__name__ = f"has_{codename}_permission"
    return has_permission


class ConsoleActionPermissions:
    """Mixin for a ModelAdmin: has_<codename>_permission for every console permission an action may name."""


for _codename in CONSOLE_ACTION_PERMISSIONS:
    setattr(ConsoleActionPermissions, f"has_{_codename}_permission", _checker(_codename))


def action_refused(modeladmin: Any, request: HttpRequest, codename: str) -> bool:
    """True (and an error message for the user) unless the user's role holds console.<codename>."""
    try:
        require_permission(request.user, codename)
    except PermissionDenied as exc:
        modeladmin.message_user(request, f"{exc.message} ({exc.code}: console.{codename})", messages.ERROR)
        return True
    return False
