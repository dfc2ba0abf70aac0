"""config/db.py: hot statements prepared on the server, inside Django's transaction and error handling."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from config.db import numeric_array, prepared_cursor, text_array

pytestmark = pytest.mark.django_db


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%41 + %"])
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_is_prepared_once_per_connection_and_logged_like_django_s(settings):
    settings.DATABASE_PREPARED_STATEMENTS = True
    with CaptureQueriesContext(connection) as queries:
        for value in (1, 2, 3):
            with prepared_cursor() as cursor:
                cursor.execute("SELECT 41 + %s::int", [value])
                assert cursor.fetchone() == (41 + value,)
    assert len(queries) == 3
    assert queries[0]["sql"] == "SELECT 41 + %s::int -- prepared, params [1]"
    assert _prepared_statements() == ["SELECT 41 + $1::int"]


def test_it_runs_in_django_s_transaction_and_raises_django_s_errors(settings):
    from funding.models import BusinessDay

    settings.DATABASE_PREPARED_STATEMENTS = True
    with transaction.atomic():
        with prepared_cursor() as cursor:
            cursor.execute("INSERT INTO funding_businessday (singleton, current, closing, updated_at) "
                           "VALUES (true, %s::date, false, now())", ["2026-11-25"])
        assert BusinessDay.objects.get().current.isoformat() == "2026-11-25"
        with pytest.raises(IntegrityError), transaction.atomic():
            with prepared_cursor() as cursor:
                cursor.execute("INSERT INTO funding_businessday (singleton, current, closing, updated_at) "
                               "VALUES (true, %s::date, false, now())", ["2026-11-26"])
        transaction.set_rollback(True)
    assert not BusinessDay.objects.exists()


def test_switched_off_it_uses_django_s_cursor_and_prepares_nothing(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 41 + %s::int", [5])
        assert cursor.fetchone() == (46,)
    assert _prepared_statements() == []


# Text that a naive literal would turn into NULL, split, unquote or unescape; and an empty array.
AWKWARD_TEXT = ["NULL", "null", "", " padded ", "a,b", "{x}", 'q"uote', "back\\slash", '\\"', "\\", '"', "it's",
                "上海 示例", "tab\there"]


@pytest.mark.parametrize("prepared", [True, False])
@pytest.mark.parametrize("values", [AWKWARD_TEXT, ["plain"], []])
def test_text_array_literals_arrive_as_exactly_these_strings(settings, prepared, values):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::text[], cardinality(%s::text[])", [text_array(values), text_array(values)])
        assert cursor.fetchone() == (values, len(values))


@pytest.mark.parametrize("prepared", [True, False])
def test_numeric_array_literals_keep_every_digit_and_never_use_an_exponent(settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    values = [Decimal("100.00"), Decimal("0.01"), Decimal("999999999999999.99"),
              Decimal("1E+2").quantize(Decimal("0.01"))]
    assert numeric_array(values) == "{100.00,0.01,999999999999999.99,100.00}"
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::numeric[]", [numeric_array(values)])
        assert cursor.fetchone() == ([Decimal("100.00"), Decimal("0.01"), Decimal("999999999999999.99"),
                                      Decimal("100.00")],)
