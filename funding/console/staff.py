"""Staff accounts created from the command line (the first ones of an installation, before anyone can log in)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from funding.console.roles import ROLES
from funding.errors import ValidationFailed
from funding.services.audit import audit_record


def staff_user_create(
    *,
    username: str,
    password: str,
    roles: list[str],
    superuser: bool = False,
    email: str = "",
    actor_label: str,
) -> AbstractBaseUser:
    """A staff user holding `roles` (groups of funding.console.roles), audited. Refuses an existing username,
    an unknown role and a password the validators reject; a superuser may hold no role."""
    user_model = get_user_model()
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValidationFailed(
            details={"roles": [f"Unknown role {name!r}; roles: {', '.join(ROLES)}." for name in unknown]}
        )
    if not roles and not superuser:
        raise ValidationFailed(details={"roles": ["Name at least one role (or make a superuser)."]})
    try:
        validate_password(password, user=user_model(username=username, email=email))
    except ValidationError as exc:
        raise ValidationFailed(details={"password": list(exc.messages)}) from exc
    with transaction.atomic():
        groups = list(Group.objects.filter(name__in=roles))
        if len(groups) != len(set(roles)):
            raise ValidationFailed(
                details={"roles": ["The role groups do not exist yet: run `manage.py migrate`."]}
            )
        try:
            with transaction.atomic():  # the unique username decides, also against a concurrent create
                user = user_model.objects.create_user(
                    username=username, email=email, password=password, is_staff=True, is_superuser=superuser
                )
        except IntegrityError as exc:
            raise ValidationFailed(details={"username": [f"A user {username!r} already exists."]}) from exc
        user.groups.set(groups)
        audit_record(
            action="staff.created", obj=user, actor_label=actor_label,
            after={"username": username, "roles": sorted(roles), "superuser": superuser},
        )
    return user
