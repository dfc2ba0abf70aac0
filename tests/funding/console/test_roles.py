import pytest
from django.contrib.auth.models import Group, Permission, User

from funding.console import roles
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission, roles_sync

VIEW_CALENDAR = {"funding.view_businessday", "funding.view_calendaryear", "funding.view_calendarday",
                 "funding.view_calendarchangerequest"}

EXPECTED = {
    "credit_officer": {
        "funding.view_company",
        "funding.add_company",
        "funding.change_company",
        "funding.view_creditline",
        "funding.add_creditline",
        "funding.view_creditlinechangerequest",
        "funding.add_creditlinechangerequest",
        "funding.view_limitfactorsnapshot",
        "funding.view_companychangerequest",
        "funding.view_advance",
        "funding.view_auditevent",
        *VIEW_CALENDAR,
        "settlement.view_repayment",
        "settlement.view_repaymentallocation",
        "funding.view_penaltyaccrual",
        "funding.view_agingsnapshot",
        "settlement.view_marginsetoff",
        "settlement.add_marginsetoff",
        "console.view_dashboard",
        "console.propose_credit_change",
        "console.propose_margin_setoff",
    },
    "credit_approver": {
        "funding.view_company",
        "funding.view_creditline",
        "funding.view_creditlinechangerequest",
        "funding.view_limitfactorsnapshot",
        "funding.view_companychangerequest",
        "funding.view_advance",
        "funding.view_auditevent",
        *VIEW_CALENDAR,
        "settlement.view_repayment",
        "settlement.view_repaymentallocation",
        "funding.view_penaltyaccrual",
        "funding.view_agingsnapshot",
        "console.view_dashboard",
        "console.approve_credit_change",
        "console.freeze_credit_line",
        "console.approve_calendar",
        "console.suspend_company",
        "console.approve_channel_change",
        "console.approve_margin_setoff",
        "settlement.view_marginsetoff",
        "settlement.view_channel",
        "settlement.view_channelerrormapping",
        "settlement.view_channelchangerequest",
        # Returns booked by staff (four eyes): the checker decides the request.
        "funding.view_payout",
        "settlement.view_payoutreturn",
        "settlement.view_payoutreturnrequest",
        "settlement.change_payoutreturnrequest",
        "console.approve_payout_return",
        "settlement.view_reconciliationexception",
        "console.approve_write_off",
    },
    "operations": {
        "funding.view_company",
        "funding.view_creditline",
        "funding.view_advance",
        "funding.view_webhookevent",
        "funding.view_businessday",
        "funding.view_calendaryear",
        "funding.view_calendarday",
        "funding.change_calendarday",
        "funding.view_calendarchangerequest",
        "settlement.view_channel",
        "settlement.add_channel",
        "settlement.change_channel",
        "settlement.view_channelerrormapping",
        "settlement.add_channelerrormapping",
        "settlement.change_channelerrormapping",
        "settlement.view_channelchangerequest",
        "funding.view_payout",
        "settlement.view_payoutattempt",
        "settlement.view_manualreview",
        "settlement.change_manualreview",
        "settlement.view_payoutreturn",
        "settlement.view_payoutreturnrequest",
        "settlement.add_payoutreturnrequest",
        "settlement.change_payoutreturnrequest",
        "settlement.view_channelstatement",
        "settlement.view_reconciliationitem",
        "settlement.view_reconciliationexception",
        "settlement.view_integritycheckrun",
        "settlement.view_simulatedchanneltransfer",
        "api.view_apikey",
        "api.view_webhookendpoint",
        "api.view_webhookoutboxevent",
        "api.view_webhookdeliveryattempt",
        "settlement.view_jobrun",
        "funding.view_bankstatementimport",
        "console.view_dashboard",
        "console.resolve_manual_review",
        "console.redeliver_webhook",
        "console.rerun_job",
        "console.revoke_api_key",
        "console.propose_calendar",
        "console.propose_channel_change",
        "console.propose_payout_return",
    },
    "finance": {
        "funding.view_company",
        "funding.view_creditline",
        "funding.view_advance",
        *VIEW_CALENDAR,
        "ledger.view_account",
        "ledger.view_journaltransaction",
        "ledger.view_entry",
        "settlement.view_channel",
        "settlement.view_channelerrormapping",
        "funding.view_payout",
        "settlement.view_payoutattempt",
        "settlement.view_channelstatement",
        "settlement.view_reconciliationitem",
        "settlement.view_payoutreturn",
        "settlement.view_reconciliationexception",
        "settlement.view_integritycheckrun",
        "settlement.view_jobrun",
        "settlement.view_repayment",
        "settlement.view_repaymentallocation",
        "funding.view_penaltyaccrual",
        "funding.view_agingsnapshot",
        "funding.view_bankstatementimport",
        "funding.view_bankstatementline",
        "settlement.view_marginsetoff",
        "console.view_dashboard",
        "console.view_reports",
        "console.upload_statement",
        "console.reconcile_statement",
        "console.propose_write_off",
    },
    "auditor": {
        "funding.view_company",
        "funding.view_creditline",
        "funding.view_creditlinechangerequest",
        "funding.view_limitfactorsnapshot",
        "funding.view_companychangerequest",
        "funding.view_auditevent",
        "funding.view_advance",
        "funding.view_webhookevent",
        *VIEW_CALENDAR,
        "ledger.view_account",
        "ledger.view_journaltransaction",
        "ledger.view_entry",
        "settlement.view_channel",
        "settlement.view_channelerrormapping",
        "settlement.view_channelchangerequest",
        "funding.view_payout",
        "settlement.view_payoutattempt",
        "settlement.view_manualreview",
        "settlement.view_payoutreturn",
        "settlement.view_payoutreturnrequest",
        "settlement.view_channelstatement",
        "settlement.view_reconciliationitem",
        "settlement.view_reconciliationexception",
        "settlement.view_integritycheckrun",
        "settlement.view_simulatedchanneltransfer",
        "settlement.view_jobrun",
        "funding.view_agingsnapshot",
        "settlement.view_repayment",
        "settlement.view_repaymentallocation",
        "settlement.view_marginsetoff",
        "funding.view_penaltyaccrual",
        "funding.view_bankstatementimport",
        "funding.view_bankstatementline",
        "api.view_apikey",
        "api.view_webhookendpoint",
        "api.view_webhookoutboxevent",
        "api.view_webhookdeliveryattempt",
        "auth.view_user",
        "auth.view_group",
        "auth.view_permission",
        "console.view_loginfailure",
        "console.view_dashboard",
        "console.view_reports",
        "console.view_audit",
    },
}

CUSTOM = [
    "view_dashboard",
    "view_reports",
    "view_audit",
    "propose_credit_change",
    "approve_credit_change",
    "freeze_credit_line",
    "resolve_manual_review",
    "redeliver_webhook",
    "rerun_job",
    "upload_statement",
    "reconcile_statement",
    "revoke_api_key",
    "propose_calendar",
    "approve_calendar",
    "propose_channel_change",
    "approve_channel_change",
    "suspend_company",
    "propose_payout_return",
    "approve_payout_return",
    "propose_write_off",
    "approve_write_off",
    "propose_margin_setoff",
    "approve_margin_setoff",
]


def group_perms(name: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=name).permissions.select_related("content_type")
    }


@pytest.mark.django_db
def test_the_migration_created_every_role_with_exactly_its_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= set(EXPECTED)
    for role, expected in EXPECTED.items():
        assert group_perms(role) == expected, role


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_is_allowed_exactly_its_console_actions(role, user_in_role):
    user = user_in_role(role)
    for codename in CUSTOM:
        perm = f"console.{codename}"
        if perm in EXPECTED[role]:
            require_permission(user, codename)
        else:
            with pytest.raises(PermissionDenied) as refused:
                require_permission(user, codename)
            assert refused.value.code == "permission_denied"
            assert refused.value.http_status == 403
            assert refused.value.details == {"permission": perm}
    granted = {p for p in user.get_all_permissions()}
    assert granted == EXPECTED[role]


@pytest.mark.django_db
def test_checker_cannot_initiate_and_maker_cannot_approve(user_in_role):
    checker = user_in_role("credit_approver")
    maker = user_in_role("credit_officer")
    for initiating in (
        "propose_credit_change",
        "funding.add_creditlinechangerequest",
        "funding.add_creditline",
        "funding.add_company",
        "funding.change_company",
        "propose_margin_setoff",
        "settlement.add_marginsetoff",
    ):
        with pytest.raises(PermissionDenied):
            require_permission(checker, initiating)
        require_permission(maker, initiating)
    for deciding in ("approve_credit_change", "freeze_credit_line", "approve_calendar", "suspend_company",
                     "approve_channel_change", "approve_payout_return", "approve_margin_setoff"):
        with pytest.raises(PermissionDenied):
            require_permission(maker, deciding)
        require_permission(checker, deciding)


@pytest.mark.django_db
def test_auditor_changes_nothing(user_in_role):
    auditor = user_in_role("auditor")
    assert all(p.split(".")[1].startswith("view_") for p in auditor.get_all_permissions())


@pytest.mark.django_db
def test_non_staff_inactive_and_anonymous_are_refused_superuser_allowed(user_in_role):
    from django.contrib.auth.models import AnonymousUser

    not_staff = user_in_role("credit_approver", username="nonstaff", is_staff=False)
    inactive = user_in_role("credit_approver", username="inactive")
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    for user in (not_staff, inactive, AnonymousUser(), None):
        with pytest.raises(PermissionDenied):
            require_permission(user, "approve_credit_change")
    boss = User.objects.create_superuser("boss", password="correct horse battery")
    require_permission(boss, "approve_credit_change")


@pytest.mark.django_db
def test_roles_sync_is_idempotent_and_removes_stray_permissions():
    stray = Permission.objects.get(content_type__app_label="ledger", codename="delete_entry")
    Group.objects.get(name="auditor").permissions.add(stray)
    first = roles_sync()
    second = roles_sync()
    assert first == second == {role: len(perms) for role, perms in EXPECTED.items()}
    for role, expected in EXPECTED.items():
        assert group_perms(role) == expected
    assert Group.objects.filter(name__in=list(EXPECTED)).count() == 5


@pytest.mark.django_db
def test_roles_sync_refuses_an_unknown_permission(monkeypatch):
    monkeypatch.setitem(
        roles.ROLES, "finance", {**roles.ROLES["finance"], "ledger.entry": ["view", "approve"]}
    )
    before = group_perms("finance")
    with pytest.raises(roles.RoleConfigurationError, match="approve"):
        roles_sync()
    assert group_perms("finance") == before


@pytest.mark.django_db
def test_the_data_migration_works_on_its_historical_models():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    state = MigrationExecutor(connection).loader.project_state(("console", "0002_roles"))
    Group.objects.filter(name__in=list(EXPECTED)).delete()
    roles_sync(apps=state.apps, strict=False)
    for role, expected in EXPECTED.items():
        assert group_perms(role) == expected
