"""Channel configuration and error-map changes under four eyes (issue 14); channel codes fixed once created."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from funding.errors import FourEyesViolation, InvalidState, ValidationFailed
from funding.models import AuditEvent
from settlement.models import Channel, ChannelChangeRequest, ChannelErrorMapping
from settlement.services.channel_changes import (
    channel_change_approve,
    channel_change_propose,
    channel_change_reject,
    channel_mark_healthy,
    channel_switch_off,
)
from settlement.services.channels import error_map_lookup
from tests.factories import staff_user

pytestmark = pytest.mark.django_db


def _mapping(channels, code: str) -> ChannelErrorMapping:
    return ChannelErrorMapping.objects.get(channel=channels["IBPS"], channel_code=code)


def test_an_error_map_change_waits_for_a_second_person(channels):
    maker, checker = staff_user("ops1"), staff_user("ops2")
    frozen = _mapping(channels, "IB3002")  # account_frozen -> failover
    proposal = channel_change_propose(kind="mapping_update", mapping=frozen, maker=maker, reason="IB says final",
                                      values={"decision": "final_failure", "unified_code": "account_frozen"})
    assert proposal.proposed == {"decision": "final_failure"}  # only what changes
    assert proposal.current["decision"] == "failover"
    assert error_map_lookup(channel=channels["IBPS"], channel_code="IB3002").decision == "failover"
    with pytest.raises(FourEyesViolation):
        channel_change_approve(request=proposal, checker=maker)
    with pytest.raises(IntegrityError, match="settlement_channel_checker_is_not_maker"), transaction.atomic():
        ChannelChangeRequest.objects.filter(pk=proposal.pk).update(checker=maker)

    channel_change_approve(request=proposal, checker=checker, reason="checked with IBPS")

    assert error_map_lookup(channel=channels["IBPS"], channel_code="IB3002").decision == "final_failure"
    applied = AuditEvent.objects.get(action="mapping_update.applied")
    assert (applied.actor, applied.before["decision"], applied.after["decision"], applied.reason) == (
        checker, "failover", "final_failure", "IB says final")
    with pytest.raises(InvalidState):
        channel_change_approve(request=proposal, checker=staff_user())


def test_adding_and_removing_error_map_entries(channels):
    maker, checker = staff_user(), staff_user()
    added = channel_change_propose(kind="mapping_create", channel=channels["IBPS"], maker=maker, reason="new code",
                                   values={"channel_code": "IB6001", "unified_code": "channel_busy",
                                           "decision": "failover"})
    assert error_map_lookup(channel=channels["IBPS"], channel_code="IB6001").mapped is False
    channel_change_approve(request=added, checker=checker)
    assert error_map_lookup(channel=channels["IBPS"], channel_code="IB6001").decision == "failover"

    with pytest.raises(ValidationFailed):  # the same code twice on one channel
        channel_change_propose(kind="mapping_create", channel=channels["IBPS"], maker=maker, reason="again",
                               values={"channel_code": "IB6001", "unified_code": "x", "decision": "failover"})
    removal = channel_change_propose(kind="mapping_delete", mapping=_mapping(channels, "IB6001"), maker=maker,
                                     reason="withdrawn by IBPS")
    channel_change_approve(request=removal, checker=checker)
    assert error_map_lookup(channel=channels["IBPS"], channel_code="IB6001").mapped is False
    assert AuditEvent.objects.get(action="mapping_delete.applied").before["channel_code"] == "IB6001"


def test_a_channel_change_is_checked_and_its_code_never_changes(channels):
    maker, checker = staff_user(), staff_user()
    beps = channels["BEPS"]
    with pytest.raises(ValidationFailed) as fixed:
        channel_change_propose(kind="channel_update", channel=beps, maker=maker, reason="rename",
                               values={"code": "BEPS2"})
    assert fixed.value.details == {"code": ["Fixed once created."]}
    with pytest.raises(ValidationFailed) as bad:
        channel_change_propose(kind="channel_update", channel=beps, maker=maker, reason="x",
                               values={"min_amount": "60000.00"})  # above its max
    assert "settlement_channel_amount_range" in str(bad.value.details)
    with pytest.raises(ValidationFailed) as adapter:
        channel_change_propose(kind="channel_update", channel=beps, maker=maker, reason="x",
                               values={"adapter": "settlement.models.Channel"})
    assert adapter.value.details == {"adapter": ["settlement.models.Channel is not a ChannelAdapter subclass."]}

    raise_max = channel_change_propose(kind="channel_update", channel=beps, maker=maker, reason="new contract",
                                       values={"max_amount": Decimal("100000.00")})
    channel_change_reject(request=raise_max, checker=checker, reason="contract not signed")
    assert Channel.objects.get(pk=beps.pk).max_amount == Decimal("50000.00")
    raise_max = channel_change_propose(kind="channel_update", channel=beps, maker=maker, reason="signed",
                                       values={"max_amount": Decimal("100000.00")})
    channel_change_approve(request=raise_max, checker=checker)
    assert Channel.objects.get(pk=beps.pk).max_amount == Decimal("100000.00")

    with pytest.raises(IntegrityError, match="fixed once created"), transaction.atomic():
        Channel.objects.filter(pk=beps.pk).update(code="BEPS2")


def test_a_new_channel_is_created_on_approval_and_counts_for_d0(channels):
    maker, checker = staff_user(), staff_user()
    proposal = channel_change_propose(kind="channel_create", maker=maker, reason="CIPS onboarding", values={
        "code": "CIPS", "name": "CIPS", "adapter": "settlement.adapters.simulated.SimulatedChannelAdapter",
        "max_amount": "5000000.00", "service_start": "09:00", "service_end": "20:00", "bank_codes": "BOC, HSBC"})
    assert not Channel.objects.filter(code="CIPS").exists()
    channel_change_approve(request=proposal, checker=checker)
    cips = Channel.objects.get(code="CIPS")
    assert (str(cips.service_start), cips.max_amount, cips.enabled) == ("09:00:00", Decimal("5000000.00"), True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT bank_codes, service_end FROM funding_channel_capacity_view WHERE channel = 'CIPS'")
        assert cursor.fetchone() == (["BOC", "HSBC"], cips.service_end)


def test_switching_a_channel_off_acts_at_once_and_is_audited(channels):
    ops = staff_user("ops")
    channel_switch_off(channel=channels["HVPS"], actor=ops, reason="HVPS outage")
    channel_switch_off(channel=channels["BEPS"], actor=ops, reason="BEPS down", disable=True)
    assert Channel.objects.get(code="HVPS").healthy is False
    assert Channel.objects.get(code="BEPS").enabled is False
    channel_mark_healthy(channel=channels["HVPS"], actor=ops, reason="back")
    assert Channel.objects.get(code="HVPS").healthy is True
    switched = AuditEvent.objects.filter(action="channel.switched").order_by("id")
    assert list(switched.values_list("after", flat=True)) == [{"healthy": False}, {"enabled": False},
                                                             {"healthy": True}]
    with pytest.raises(ValidationFailed):
        channel_switch_off(channel=channels["HVPS"], actor=ops, reason="")


def _in_role(username: str, role: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def test_in_the_admin_saving_only_proposes(client, channels):
    ops, approver = _in_role("ops", "operations"), _in_role("approver", "credit_approver")
    mapping = _mapping(channels, "IB3002")
    client.force_login(ops)
    url = reverse("admin:settlement_channelerrormapping_change", args=[mapping.pk])
    response = client.post(url, {"unified_code": "account_frozen", "decision": "final_failure",
                                 "description": "", "reason": "per IBPS notice"})
    assert response.status_code == 302
    assert ChannelErrorMapping.objects.get(pk=mapping.pk).decision == "failover"
    proposal = ChannelChangeRequest.objects.get()
    assert (proposal.kind, proposal.proposed, proposal.maker) == ("mapping_update", {"decision": "final_failure"}, ops)
    changelist = reverse("admin:settlement_channelchangerequest_changelist")
    client.post(changelist, {"action": "approve", "_selected_action": [proposal.pk], "apply": "1", "reason": ""})
    assert ChannelErrorMapping.objects.get(pk=mapping.pk).decision == "failover"  # ops may not approve

    client.force_login(approver)
    assert client.get(url).status_code == 200  # the checker may look
    client.post(changelist, {"action": "approve", "_selected_action": [proposal.pk], "apply": "1", "reason": ""})
    assert ChannelErrorMapping.objects.get(pk=mapping.pk).decision == "final_failure"
