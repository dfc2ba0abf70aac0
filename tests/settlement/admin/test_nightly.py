from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from funding.models import BankStatementImport
from ledger.models import AccountKind
from tests.factories import company_with_line
from tests.settlement.nightly_helpers import balance, statement_csv

pytestmark = pytest.mark.django_db


def test_staff_upload_imports_the_statement(business_day, client):
    company, _ = company_with_line()
    admin_user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(admin_user)
    data = statement_csv(
        ("2026-11-25", company.settlement_account_no, "C", "88.00", "UP1", "", ""),
        ("2026-11-25", "nope", "C", "1.00", "UP2", "", ""),
    )

    page = client.get("/admin/funding/bankstatementimport/upload/")
    assert page.status_code == 200
    response = client.post(
        "/admin/funding/bankstatementimport/upload/",
        {"file": SimpleUploadedFile("s.csv", data, content_type="text/csv")},
    )

    statement = BankStatementImport.objects.get()
    assert response.status_code == 302
    assert (statement.lines_imported, statement.lines_rejected, statement.imported_by) == (1, 1, "ops")
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("88.00")
    assert client.get(f"/admin/funding/bankstatementimport/{statement.pk}/change/").status_code == 200
    assert client.get("/admin/settlement/jobrun/").status_code == 200


def test_upload_needs_permission(business_day, client):
    user = User.objects.create_user("viewer", password="a-long-password-1", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/funding/bankstatementimport/upload/").status_code == 403


def _staff(username: str, role: str) -> User:
    from django.contrib.auth.models import Group

    user = User.objects.create_user(username, password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _failed_close(business_date):
    from settlement.models import JobName, JobRun, JobRunStatus

    return JobRun.objects.create(job=JobName.CLOSE_BUSINESS_DAY, business_date=business_date,
                                 next_business_date=business_date, step="overdue", status=JobRunStatus.FAILED,
                                 error="OperationalError: server closed the connection")


def test_operations_reruns_a_failed_run_through_the_worker(business_day, client,
                                                           django_capture_on_commit_callbacks):
    from funding.models import AuditEvent
    from funding.services.calendar import business_date_current

    run = _failed_close(business_date_current())
    client.force_login(_staff("ops1", "operations"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/admin/settlement/jobrun/",
                               {"action": "rerun_failed", "_selected_action": [run.pk]})
    assert response.status_code == 302
    assert len(callbacks) == 1  # the nightly task, enqueued only once the request commits
    audit = AuditEvent.objects.get(action="job_run.rerun_requested")
    assert (audit.actor_label, audit.object_id, audit.before["step"]) == ("ops1", str(run.pk), "overdue")


def test_finance_cannot_rerun_and_a_finished_run_is_refused(business_day, client,
                                                            django_capture_on_commit_callbacks):
    from funding.models import AuditEvent
    from funding.services.calendar import business_date_current
    from settlement.models import JobRun, JobRunStatus
    from settlement.services.nightly import JobError, job_run_resume

    run = _failed_close(business_date_current())
    client.force_login(_staff("fin1", "finance"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/admin/settlement/jobrun/",
                               {"action": "rerun_failed", "_selected_action": [run.pk]})
    assert response.status_code == 403 and callbacks == []
    JobRun.objects.filter(pk=run.pk).update(status=JobRunStatus.SUCCEEDED)
    with pytest.raises(JobError, match="Only a failed run"):
        job_run_resume(run_id=run.pk, actor=User.objects.get(username="fin1"))
    assert not AuditEvent.objects.filter(action="job_run.rerun_requested").exists()
