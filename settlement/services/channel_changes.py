"""Channel configuration and error-map changes under four eyes (issue 14): a maker proposes, a different staff
member applies. A wrong failover mapping can pay twice, and a channel's limits and hours decide what the
engine accepts (D0: funding_channel_capacity_view), so neither changes on one person's word.

Immediate, one person, audited, because they only reduce what is sent: disabling a channel and marking it
unhealthy (an outage). Marking it healthy again only lets routing use it again (an enabled channel whose
configuration was approved). Channel codes never change once created: ledger accounts are keyed by them
(the admin shows them read-only; a trigger refuses it in the database).
"""

from datetime import time
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from funding.errors import FourEyesViolation, InvalidState, ValidationFailed
from funding.services.audit import audit_record
from settlement.models import (
    Channel,
    ChannelChangeKind,
    ChannelChangeRequest,
    ChannelChangeStatus,
    ChannelErrorMapping,
)

CHANNEL_FIELDS = ("code", "name", "enabled", "healthy", "fee_fixed", "fee_bps", "min_amount", "max_amount",
                  "service_start", "service_end", "runs_on_non_business_days", "bank_codes", "adapter",
                  "adapter_settings")
MAPPING_FIELDS = ("channel_code", "unified_code", "decision", "description")
# What an update may not touch: a channel's code names its ledger accounts; a mapping's channel code is what
# it maps (another code is another entry: remove this one, add that one).
FIXED = {ChannelChangeKind.CHANNEL_UPDATE: {"code"}, ChannelChangeKind.MAPPING_UPDATE: {"channel_code"}}


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, time):
        return value.isoformat()
    return value


def _snapshot(obj: Channel | ChannelErrorMapping | None, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: _json(getattr(obj, f)) for f in fields} if obj is not None else {}


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field or "non_field_errors": [str(m) for e in errs for m in e.messages]
                for field, errs in exc.error_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def _built(kind: str, *, channel: Channel | None, mapping: ChannelErrorMapping | None,
           values: dict[str, Any], lock: bool = False) -> Channel | ChannelErrorMapping:
    """The object as it would be with `values` applied, validated (not saved). `lock`: inside the approval's
    transaction, the row is locked as read, so an outage switch-off committed meanwhile is not written over."""
    channels = Channel.objects.select_for_update() if lock else Channel.objects
    mappings = ChannelErrorMapping.objects.select_for_update() if lock else ChannelErrorMapping.objects
    if kind in (ChannelChangeKind.CHANNEL_CREATE, ChannelChangeKind.CHANNEL_UPDATE):
        obj, fields = (Channel() if channel is None else channels.get(pk=channel.pk)), CHANNEL_FIELDS
    else:
        obj = ChannelErrorMapping(channel=channel) if mapping is None else mappings.get(pk=mapping.pk)
        fields = MAPPING_FIELDS
    unknown = set(values) - set(fields)
    fixed = set(values) & FIXED.get(kind, set())
    if unknown or fixed:
        raise ValidationFailed(details={
            **{k: ["Not a field of this change."] for k in sorted(unknown)},
            **{k: ["Fixed once created."] for k in sorted(fixed)},
        })
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        try:
            setattr(obj, name, obj._meta.get_field(name).clean(value, obj))
        except ValidationError as exc:
            errors[name] = [str(m) for m in exc.messages]
    if errors:
        raise ValidationFailed(details=errors)
    try:
        obj.full_clean(validate_unique=True, validate_constraints=True)
    except ValidationError as exc:
        raise ValidationFailed(details=_errors(exc)) from exc
    if isinstance(obj, Channel):
        if (obj.service_start is None) != (obj.service_end is None):
            raise ValidationFailed(details={"service_end": ["Give both service start and end, or neither (7x24)."]})
        _check_adapter(obj.adapter)
    return obj


def _check_adapter(path: str) -> None:
    from settlement.adapters.base import ChannelAdapter

    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ValidationFailed(details={"adapter": [f"Cannot import {path}: {exc}"]}) from exc
    if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
        raise ValidationFailed(details={"adapter": [f"{path} is not a ChannelAdapter subclass."]})


def channel_change_propose(
    *, kind: str, maker: AbstractBaseUser, reason: str, values: dict[str, Any] | None = None,
    channel: Channel | None = None, mapping: ChannelErrorMapping | None = None,
) -> ChannelChangeRequest:
    """Propose a channel or error-map change. Checked now (the checker sees a change that can be applied)
    and again when applied."""
    values = {k: _json(v) for k, v in (values or {}).items()}
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    needs = {
        ChannelChangeKind.CHANNEL_CREATE: (channel is None and mapping is None),
        ChannelChangeKind.CHANNEL_UPDATE: (channel is not None and mapping is None),
        ChannelChangeKind.MAPPING_CREATE: (channel is not None and mapping is None),
        ChannelChangeKind.MAPPING_UPDATE: (mapping is not None),
        ChannelChangeKind.MAPPING_DELETE: (mapping is not None),
    }
    if kind not in needs or not needs[kind]:
        raise ValidationFailed(details={"kind": ["Not a valid change for this object."]})
    if mapping is not None:
        channel = mapping.channel
    current_obj = mapping if kind in (ChannelChangeKind.MAPPING_UPDATE, ChannelChangeKind.MAPPING_DELETE) else (
        channel if kind == ChannelChangeKind.CHANNEL_UPDATE else None)
    fields = CHANNEL_FIELDS if kind.startswith("channel") else MAPPING_FIELDS
    current = _snapshot(current_obj, fields)
    if kind != ChannelChangeKind.MAPPING_DELETE:
        values = {k: v for k, v in values.items() if current.get(k, object()) != v}  # what changes
        if not values:
            raise ValidationFailed(details={"values": ["Nothing changes."]})
        _built(kind, channel=channel, mapping=mapping, values=values)
    with transaction.atomic():
        request = ChannelChangeRequest.objects.create(
            kind=kind, channel=channel, mapping=mapping, proposed=values, current=current, maker=maker,
            maker_reason=reason,
        )
        audit_record(action="channel_change.proposed", obj=request, actor=maker, before=current, after=values,
                     reason=reason)
    return request


def channel_change_approve(
    *, request: ChannelChangeRequest, checker: AbstractBaseUser, reason: str = ""
) -> ChannelChangeRequest:
    """A different staff member applies the proposal, checked again against the current configuration."""
    with transaction.atomic():
        request = _lock_pending(request, checker)
        kind = request.kind
        if kind == ChannelChangeKind.MAPPING_DELETE:
            if request.mapping is None:
                raise InvalidState("The error-map entry no longer exists.")
            # Audited before the delete, so that the row names the entry removed.
            audit_record(action=f"{kind}.applied", obj=request.mapping, actor=checker,
                         before=_snapshot(request.mapping, MAPPING_FIELDS), after={}, reason=request.maker_reason)
            request.mapping.delete()
            request.mapping = None
        else:
            target = request.channel if kind.startswith("channel") else request.mapping
            if kind in (ChannelChangeKind.CHANNEL_UPDATE, ChannelChangeKind.MAPPING_UPDATE) and target is None:
                raise InvalidState("The object of this change no longer exists.")
            fields = CHANNEL_FIELDS if kind.startswith("channel") else MAPPING_FIELDS
            before = _snapshot(target if kind.endswith("update") else None, fields)
            obj = _built(kind, channel=request.channel if kind != ChannelChangeKind.CHANNEL_CREATE else None,
                         mapping=request.mapping, values=request.proposed, lock=True)
            try:
                with transaction.atomic():
                    # An update writes only what was proposed (the rest, e.g. an outage switch-off, stays).
                    written = [*request.proposed, *(["updated_at"] if hasattr(obj, "updated_at") else [])]
                    obj.save(update_fields=written if kind.endswith("update") else None)
            except IntegrityError as exc:
                raise ValidationFailed(details={"non_field_errors": [str(exc).splitlines()[0]]}) from exc
            after = _snapshot(obj, fields)
            if kind == ChannelChangeKind.CHANNEL_CREATE:
                request.channel = obj
            elif kind == ChannelChangeKind.MAPPING_CREATE:
                request.mapping = obj
            audit_record(action=f"{kind}.applied", obj=obj, actor=checker, before=before, after=after,
                         reason=request.maker_reason)
        request.mark_approved()
        request.checker, request.checker_reason, request.decided_at = checker, reason, timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at", "channel", "mapping"])
        audit_record(action="channel_change.approved", obj=request, actor=checker, before={"status": "pending"},
                     after={"status": "approved"}, reason=reason)
    return request


def channel_change_reject(*, request: ChannelChangeRequest, checker: AbstractBaseUser, reason: str
                          ) -> ChannelChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        request = _lock_pending(request, checker)
        request.mark_rejected()
        request.checker, request.checker_reason, request.decided_at = checker, reason, timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="channel_change.rejected", obj=request, actor=checker, before={"status": "pending"},
                     after={"status": "rejected"}, reason=reason)
    return request


def _lock_pending(request: ChannelChangeRequest, checker: AbstractBaseUser) -> ChannelChangeRequest:
    request = (ChannelChangeRequest.objects.select_for_update(of=("self",))
               .select_related("channel", "mapping__channel").get(pk=request.pk))
    if request.maker_id == checker.pk:
        raise FourEyesViolation("The proposer of a channel change cannot approve or reject it.")
    if request.status != ChannelChangeStatus.PENDING:
        raise InvalidState(f"Channel change #{request.pk} is already {request.status}.")
    return request


def channel_switch_off(*, channel: Channel, actor: AbstractBaseUser, reason: str, disable: bool = False) -> Channel:
    """An outage, at once and by one person: mark the channel unhealthy (routing skips it) or disable it
    (nothing is routed to it and its capacity no longer counts for D0). Turning it on again is a proposal."""
    return _switch(channel=channel, actor=actor, reason=reason,
                   changes={"enabled": False} if disable else {"healthy": False})


def channel_mark_healthy(*, channel: Channel, actor: AbstractBaseUser, reason: str) -> Channel:
    """The outage is over: routing may use the (enabled, approved) channel again."""
    return _switch(channel=channel, actor=actor, reason=reason, changes={"healthy": True})


def _switch(*, channel: Channel, actor: AbstractBaseUser, reason: str, changes: dict[str, bool]) -> Channel:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        before = {k: getattr(channel, k) for k in changes}
        if before == changes:
            return channel
        for key, value in changes.items():
            setattr(channel, key, value)
        channel.save(update_fields=[*changes, "updated_at"])
        audit_record(action="channel.switched", obj=channel, actor=actor, before=before, after=changes,
                     reason=reason)
    return channel
