"""Rules PostgreSQL enforces for funding by itself (raw SQL, not the ORM): the audit trail is append-only,
and reserved + outstanding can never pass the line's limit_ceiling."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from funding.models import AuditEvent, CreditLine
from funding.services.credit_lines import credit_line_freeze
from funding.services.line_counters import line_hold
from tests.factories import company_with_line, staff_user

pytestmark = pytest.mark.django_db

D = Decimal


def _raw(sql: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_audit_rows_cannot_be_updated_or_deleted_by_raw_sql():
    company, line = company_with_line()
    credit_line_freeze(credit_line=line, actor=staff_user(), reason="overdue")
    audit = AuditEvent.objects.get(action="credit_line.frozen")

    with pytest.raises(IntegrityError, match="append-only: UPDATE refused"):
        _raw("UPDATE funding_auditevent SET reason = 'nothing happened' WHERE id = %s", [audit.pk])
    with pytest.raises(IntegrityError, match="append-only: DELETE refused"):
        _raw("DELETE FROM funding_auditevent WHERE id = %s", [audit.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic():
            AuditEvent.objects.filter(pk=audit.pk).update(after={})

    audit.refresh_from_db()
    assert (audit.reason, audit.after) == ("overdue", {"status": "frozen"})


def test_raw_sql_cannot_take_usage_above_the_limit_ceiling():
    company, line = company_with_line(limit="1000.00")
    assert line_hold(line_id=line.pk, amount=D("600.00"))

    with pytest.raises(IntegrityError, match="funding_line_within_limit"):
        _raw("UPDATE funding_creditline SET reserved = reserved + 400.01 WHERE id = %s", [line.pk])
    with pytest.raises(IntegrityError, match="funding_line_within_limit"):
        _raw("UPDATE funding_creditline SET outstanding = 400.01 WHERE id = %s", [line.pk])
    with pytest.raises(IntegrityError, match="funding_line_counters_non_negative"):
        _raw("UPDATE funding_creditline SET reserved = -1 WHERE id = %s", [line.pk])
    with pytest.raises(IntegrityError, match="funding_line_ceiling_covers_limit"):
        _raw("UPDATE funding_creditline SET limit_ceiling = 999.99 WHERE id = %s", [line.pk])
    with pytest.raises(IntegrityError, match="funding_line_effective_within_approved"):
        _raw("UPDATE funding_creditline SET effective_limit = 1000.01, limit_ceiling = 1000.01 WHERE id = %s",
             [line.pk])
    # Up to the ceiling is allowed.
    _raw("UPDATE funding_creditline SET reserved = reserved + 400.00 WHERE id = %s", [line.pk])
    assert CreditLine.objects.get(pk=line.pk).reserved == D("1000.00")


def test_conditional_hold_refuses_beyond_the_limit_without_touching_the_row():
    company, line = company_with_line(limit="1000.00")
    assert line_hold(line_id=line.pk, amount=D("999.99"))
    assert not line_hold(line_id=line.pk, amount=D("0.02"))
    assert line_hold(line_id=line.pk, amount=D("0.01"))
    assert CreditLine.objects.get(pk=line.pk).reserved == D("1000.00")
