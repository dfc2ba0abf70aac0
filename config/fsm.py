"""Set-based django-fsm-2 transitions: one UPDATE whose WHERE names the transition's own source states.

A bulk job must never write a bare `.update(status=...)`: the states it moves rows from are read from the
transition declared on the model (`@transition(source=..., target=...)`), so the SQL and the FSM cannot
drift apart (tests compare them).
"""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django_fsm import ANY_OTHER_STATE, ANY_STATE


def _meta(method: Callable) -> Any:
    meta = getattr(method, "_django_fsm", None)
    if meta is None:
        raise TypeError(f"{method!r} is not a django-fsm transition")
    return meta


def transition_field_name(method: Callable) -> str:
    field = _meta(method).field
    return field if isinstance(field, str) else field.name


def transition_target(method: Callable) -> str:
    targets = {str(t.target) for t in _meta(method).transitions.values()}
    if len(targets) != 1:
        raise ValueError(f"{method.__name__} has several targets {sorted(targets)}: not set-based")
    return targets.pop()


def transition_sources(method: Callable, *, wildcards: bool = True) -> list[str]:
    """The source states of a transition, sorted: the one definition for every set-based SQL transition and
    every module-level list of states (`ADVANCE_DUE_STATES` ...). `*` and `+` are expanded over the field's
    choices; with `wildcards=False` they are refused (ValueError): a constant that SQL names must list states."""
    meta = _meta(method)
    sources = set()
    target = transition_target(method)
    for source in meta.transitions:
        if source in (ANY_STATE, ANY_OTHER_STATE):
            if not wildcards:
                raise ValueError(f"{method.__qualname__} has a wildcard source; name its states for set-based SQL")
            field = meta.field
            choices = [str(value) for value, _ in field.choices]
            sources.update(c for c in choices if source == ANY_STATE or c != target)
        else:
            sources.add(str(source))
    return sorted(sources)


def fsm_update(queryset: QuerySet, method: Callable, **changes: Any) -> int:
    """Move every row of `queryset` that is in one of `method`'s source states to its target, with `changes`,
    in one UPDATE. Returns the number of rows moved (rows in another state are left as they are)."""
    field = transition_field_name(method)
    return queryset.filter(**{f"{field}__in": transition_sources(method)}).update(
        **{field: transition_target(method)}, **changes
    )


class TransitionConflict(RuntimeError):
    """A set-based transition moved another number of rows than the caller locked: never expected; raised inside
    the caller's transaction, which is then undone."""


def fsm_update_exactly(queryset: QuerySet, method: Callable, *, expected: int, **changes: Any) -> None:
    """fsm_update for rows the caller holds locked in a source state: all `expected` of them must move, or
    TransitionConflict."""
    moved = fsm_update(queryset, method, **changes)
    if moved != expected:
        label = queryset.model._meta.verbose_name_plural
        raise TransitionConflict(f"{moved} of {expected} {label} moved to {transition_target(method)}")
