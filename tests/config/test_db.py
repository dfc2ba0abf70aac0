"""config/db.py: hot statements prepared on the server, inside Django's transaction and error handling."""

from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from config.db import (
    Finish,
    FinishDeclined,
    Gate,
    Slot,
    commit_with,
    gated_fetchone,
    numeric_array,
    prepared_cursor,
    slot_template,
    text_array,
)

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


# Gates (gated_fetchone) ---------------------------------------------------------------------------------------

_GATE_LOG = """
CREATE TEMP TABLE gate_log (id serial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION pg_temp.operation_write(p_what text, OUT what text, OUT logged bigint) LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO gate_log (what) VALUES (p_what) RETURNING id INTO logged;
    what := p_what;
END
$fn$;
"""
_OPERATION = "SELECT * FROM pg_temp.operation_write(%s::text)"


def _gate(open_: bool) -> Gate:
    """Writes a row whatever it decides (as the idempotency claim records a nonce), then opens or not."""
    return Gate(ctes="noted AS (INSERT INTO gate_log (what) VALUES ('gate') RETURNING id)",
                columns="%s::boolean AS open, (SELECT id FROM noted)", params=[open_], width=2)


def _gate_log() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT what FROM gate_log ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def gate_log(settings):
    settings.DATABASE_PREPARED_STATEMENTS = True
    with connection.cursor() as cursor:
        cursor.execute(_GATE_LOG)


def test_an_open_gate_runs_first_in_the_operation_s_own_statement(gate_log):
    gate = _gate(True)
    with CaptureQueriesContext(connection) as queries, prepared_cursor() as cursor:
        row = gated_fetchone(cursor, gate, _OPERATION, ["operation"])
    assert len(queries) == 1
    assert _gate_log() == ["gate", "operation"]
    assert gate.row[0] is True and row[0] == "operation"
    assert row[1] == gate.row[1] + 1  # the gate's write came first


def test_a_closed_gate_keeps_the_operation_from_running_not_merely_from_answering(gate_log):
    """Alternating, past the executions after which PostgreSQL may switch a prepared statement to its generic
    plan: a closed gate never lets the operation's write happen."""
    expected = []
    for n in range(12):
        opened = n % 3 == 0
        gate = _gate(opened)
        with prepared_cursor() as cursor:
            row = gated_fetchone(cursor, gate, _OPERATION, [f"operation {n}"])
        assert gate.row[0] is opened
        assert (row is not None) is opened
        expected += ["gate", f"operation {n}"] if opened else ["gate"]
    assert _gate_log() == expected


def test_without_a_gate_or_with_one_that_ran_the_operation_runs_alone(gate_log):
    gate = _gate(True)
    with prepared_cursor() as cursor:
        gated_fetchone(cursor, gate, _OPERATION, ["first"])
        assert gated_fetchone(cursor, gate, _OPERATION, ["second"])[0] == "second"
        assert gated_fetchone(cursor, None, _OPERATION, ["third"])[0] == "third"
    assert _gate_log() == ["gate", "first", "second", "third"]


# Finishes (gated_fetchone's last step) and slots --------------------------------------------------------------

_FINISH = """
CREATE FUNCTION pg_temp.finish_write(p_take boolean, p_what text) RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_take IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'ZZ001', MESSAGE = 'declined';
    END IF;
    INSERT INTO gate_log (what) VALUES ('finish ' || p_what);
    RETURN 'finished ' || p_what;
END
$fn$;
"""


def _finish(suffix: str) -> Finish:
    """Takes an open gate's operation only; its parameter comes after the gate's in the text, before the
    operation's."""
    return Finish(sql="pg_temp.finish_write(gate.open AND operation.what IS NOT NULL, operation.what || %s::text)",
                  params=[suffix], declined="ZZ001")


@pytest.fixture
def finish_log(gate_log):
    with connection.cursor() as cursor:
        cursor.execute(_FINISH)


def test_a_finish_runs_last_in_the_same_statement_over_the_gate_s_and_the_operation_s_columns(finish_log):
    gate, finish = _gate(True), _finish("!")
    with CaptureQueriesContext(connection) as queries, prepared_cursor() as cursor:
        row = gated_fetchone(cursor, gate, _OPERATION, ["operation"], finish)
    assert len(queries) == 1
    assert _gate_log() == ["gate", "operation", "finish operation!"]
    assert row[0] == "operation" and len(row) == 2  # the finish's column is not the operation's
    assert finish.value == "finished operation!"


def test_a_declined_finish_undoes_the_whole_statement_gate_and_operation_included(finish_log):
    """Alternating past the generic-plan threshold of the prepared statement, as for the closed gate."""
    expected = []
    for n in range(8):
        opened = n % 2 == 0
        finish = _finish(f" {n}")
        if opened:
            with prepared_cursor() as cursor:
                gated_fetchone(cursor, _gate(True), _OPERATION, [f"operation {n}"], finish)
        else:  # (in a savepoint of the test's transaction, which the error rolls back)
            with pytest.raises(FinishDeclined), transaction.atomic(), prepared_cursor() as cursor:
                gated_fetchone(cursor, _gate(False), _OPERATION, [f"operation {n}"], finish)
        expected += ["gate", f"operation {n}", f"finish operation {n} {n}"] if opened else []
        assert finish.value == (f"finished operation {n} {n}" if opened else None)
    assert _gate_log() == expected


def test_a_declined_finish_is_recognised_through_django_s_own_cursor_too(finish_log, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False  # Django wraps the error; its cause carries the SQLSTATE
    with pytest.raises(FinishDeclined), transaction.atomic(), prepared_cursor() as cursor:
        gated_fetchone(cursor, _gate(False), _OPERATION, ["operation"], _finish("!"))
    with prepared_cursor() as cursor:
        gated_fetchone(cursor, _gate(True), _OPERATION, ["operation"], finish := _finish("!"))
    assert (finish.value, _gate_log()) == ("finished operation!", ["gate", "operation", "finish operation!"])


def test_other_errors_of_a_finished_statement_stay_what_they_are(finish_log):
    finish = Finish(sql="pg_temp.finish_write(true, (1 / 0)::text)", params=[], declined="ZZ001")
    with pytest.raises(DatabaseError, match="division by zero"), transaction.atomic(), prepared_cursor() as cursor:
        gated_fetchone(cursor, _gate(True), _OPERATION, ["operation"], finish)


def test_a_finish_needs_the_gate_s_first_run(finish_log):
    gate = _gate(True)
    with prepared_cursor() as cursor:
        gated_fetchone(cursor, gate, _OPERATION, ["first"])
        for used in (gate, None):
            with pytest.raises(ValueError, match="only in a gated statement"):
                gated_fetchone(cursor, used, _OPERATION, ["again"], _finish(""))
    assert _gate_log() == ["gate", "first"]


def test_slots_become_format_s_positions_and_postgresql_fills_in_exactly_the_text_python_renders():
    from rest_framework.renderers import JSONRenderer

    clients_text = f"100% sure, %s %1$s %% slot{Slot.MARK[4:8]}n1 {Slot(1).token}x \"{Slot(1).token[:-1]}\""
    data = {"a": f"{Slot(1):.2f}", "b": [Slot(2).isoformat(), {"c": f"{Slot(1):.2f}"}], "t": clients_text}
    template = slot_template(JSONRenderer().render(data).decode())
    assert template.count('"%1$s"') == 2 and template.count('"%2$s"') == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT format(%s::text, VARIADIC %s::text[])", [template, "{12.30,2026-12-02}"])
        filled = cursor.fetchone()[0]
    expected = {"a": "12.30", "b": ["2026-12-02", {"c": "12.30"}], "t": clients_text}
    assert filled.encode() == JSONRenderer().render(expected)


# commit_with -------------------------------------------------------------------------------------------------

_NOT_IN_PROGRESS = "SELECT api_idempotency_complete(%s::bigint, %s::int, %s::text, now())"


@pytest.fixture
def scratch_table():
    """A real table (the check reads it from a second connection), dropped afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_commit_with (what text NOT NULL)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE test_commit_with")


def _committed_rows() -> list[str]:
    """What another connection sees."""
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT what FROM test_commit_with ORDER BY what")
            return [row[0] for row in cursor.fetchall()]
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_the_outermost_block_s_last_statement_carries_its_commit(scratch_table):
    hooks = []
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO test_commit_with VALUES ('before')")
        transaction.on_commit(lambda: hooks.append(_committed_rows()))
        assert commit_with("INSERT INTO test_commit_with VALUES (%s)", ["it's last"]) is True
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert _committed_rows() == ["before", "it's last"]  # committed before the block's end
        assert hooks == []  # Django's hooks still wait for it
    assert hooks == [["before", "it's last"]]
    assert queries[-2]["sql"] == "INSERT INTO test_commit_with VALUES (%s); COMMIT -- literals, params [\"it's last\"]"
    # Django logs its own COMMIT at the block's end; psycopg sends nothing for it, the transaction being idle.
    assert queries[-1]["sql"] == "COMMIT"


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_stops_the_commit_and_the_block_rolls_back(scratch_table):
    hooks = []
    with pytest.raises(DatabaseError, match="idempotency record -1 was not in progress"):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO test_commit_with VALUES ('before')")
            transaction.on_commit(lambda: hooks.append("ran"))
            commit_with(_NOT_IN_PROGRESS, [-1, 201, "{}"])
    assert _committed_rows() == []
    assert hooks == []
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_inside_an_outer_block_it_leaves_the_commit_to_django(settings):
    """pytest-django's own block is the outer one here: the statement runs alone, in the transaction."""
    settings.DATABASE_PREPARED_STATEMENTS = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE inner_commit (what text)")
    with transaction.atomic():
        assert commit_with("INSERT INTO inner_commit VALUES (%s)", ["inner"]) is False
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with connection.cursor() as cursor:
        cursor.execute("SELECT what FROM inner_commit")
        assert cursor.fetchall() == [("inner",)]
    with pytest.raises(DatabaseError, match="idempotency record -1 was not in progress"), transaction.atomic():
        commit_with(_NOT_IN_PROGRESS, [-1, 201, "{}"])


@pytest.mark.django_db(transaction=True)
def test_a_statement_after_it_runs_in_a_new_transaction_committed_at_the_block_s_end(scratch_table):
    with transaction.atomic():
        assert commit_with("INSERT INTO test_commit_with VALUES (%s)", ["carried"]) is True
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO test_commit_with VALUES ('after')")
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert _committed_rows() == ["carried"]
    assert _committed_rows() == ["after", "carried"]
