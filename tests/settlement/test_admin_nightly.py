from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from ledger.models import AccountKind
from settlement.models import BankStatementImport
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

    page = client.get("/admin/settlement/bankstatementimport/upload/")
    assert page.status_code == 200
    response = client.post(
        "/admin/settlement/bankstatementimport/upload/",
        {"file": SimpleUploadedFile("s.csv", data, content_type="text/csv")},
    )

    statement = BankStatementImport.objects.get()
    assert response.status_code == 302
    assert (statement.lines_imported, statement.lines_rejected, statement.imported_by) == (1, 1, "ops")
    assert balance(company, AccountKind.SETTLEMENT) == Decimal("88.00")
    assert client.get(f"/admin/settlement/bankstatementimport/{statement.pk}/change/").status_code == 200
    assert client.get("/admin/settlement/jobrun/").status_code == 200


def test_upload_needs_permission(business_day, client):
    user = User.objects.create_user("viewer", password="a-long-password-1", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/settlement/bankstatementimport/upload/").status_code == 403
