import pytest
from django.urls import reverse

from funding.models import ChangeRequestKind
from funding.services.credit_lines import change_request_propose, credit_line_freeze
from tests.factories import company_with_line


@pytest.mark.django_db
def test_auditor_filters_the_trail_by_company_object_and_user(business_day, client, user_in_role):
    _acme, line = company_with_line(code="ACME")
    company_with_line(code="BETA")
    maker = user_in_role("credit_officer", username="maker")
    change_request_propose(
        credit_line=line,
        kind=ChangeRequestKind.CHANGE_TERMS,
        proposed={"approved_limit": "2000000.00"},
        maker=maker,
        reason="growth",
    )
    credit_line_freeze(
        credit_line=line, actor=user_in_role("credit_approver", username="checker"), reason="overdue"
    )
    client.force_login(user_in_role("auditor"))
    url = reverse("console:audit")

    by_user = client.get(url, {"actor": "maker", "format": "csv"}).content.decode("utf-8-sig").splitlines()
    assert by_user[0] == "occurred_at,actor,action,object_type,object_id,company,before,after,reason"
    assert len(by_user) == 2
    assert by_user[1].split(",")[1:6] == [
        "maker",
        "change_request.proposed",
        "funding.creditlinechangerequest",
        by_user[1].split(",")[4],
        "ACME",
    ]
    assert by_user[1].endswith(",growth")

    by_object = (
        client.get(url, {"object_type": "funding.creditline", "object_id": str(line.pk), "format": "csv"})
        .content.decode("utf-8-sig")
        .splitlines()[1:]
    )
    assert [row.split(",")[1:3] for row in by_object] == [
        ["checker", "credit_line.frozen"],
        [by_object[1].split(",")[1], "credit_line.approve_line"],
        [by_object[2].split(",")[1], "credit_line.drafted"],
    ]
    by_company = client.get(url, {"company": "BETA", "format": "csv"}).content.decode("utf-8-sig").splitlines()[1:]
    assert {row.split(",")[5] for row in by_company} == {"BETA"}
    page = client.get(url, {"company": "ACME"})
    assert page.status_code == 200 and "credit_line.frozen" in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["credit_officer", "credit_approver", "operations", "finance"])
def test_only_auditors_open_the_audit_trail(business_day, client, user_in_role, role):
    client.force_login(user_in_role(role))
    assert client.get(reverse("console:audit")).status_code == 403


@pytest.mark.django_db
def test_audit_csv_quotes_formula_text(business_day, client, user_in_role):
    import csv
    import io

    _acme, line = company_with_line(code="ACME")
    credit_line_freeze(
        credit_line=line,
        actor=user_in_role("credit_approver", username="checker"),
        reason="@SUM(1+1)*cmd|' /C calc'!A0",
    )
    client.force_login(user_in_role("auditor"))
    response = client.get(reverse("console:audit"), {"actor": "checker", "format": "csv"})
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response["Content-Disposition"] == 'attachment; filename="audit_trail.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row[-1] for row in rows] == ["reason", "'@SUM(1+1)*cmd|' /C calc'!A0"]
