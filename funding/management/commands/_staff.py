"""What the four-eyes commands share: the acting staff member named by --user, and how refusals are printed."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from funding.console.roles import require_permission
from funding.errors import EngineError


def staff_member(username: str, permission: str):
    """The active staff user `username` holding console.`permission`; CommandError (non-zero exit) otherwise."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"unknown_user: no staff member {username!r}")
    try:
        require_permission(user, permission)
    except EngineError as exc:
        raise CommandError(f"{exc.code}: {username} may not do this (needs console.{permission})") from exc
    return user


def refusal(exc: EngineError, stderr) -> CommandError:
    """Details one per line on stderr (e.g. `line 4: ...`), the code and message as the command's error."""
    for field, messages in exc.details.items():
        for message in messages if isinstance(messages, list) else [messages]:
            stderr.write(f"{field}: {message}")
    return CommandError(f"{exc.code}: {exc.message}")
