"""Server-side prepared statements for the few fixed statements every API request runs.

Django's psycopg cursors bind parameters on the client (the values are inlined into the SQL text), so
PostgreSQL parses and plans every statement afresh: for the API key lookup that was 90 us of backend CPU
against 30 us prepared (docs/benchmarks.md). `prepared_cursor()` runs statements on Django's connection and
transaction, but with server-side binding and `prepare=True`: planned once per connection, then reused.

Parameters are sent typed, not inlined: give them explicit casts where PostgreSQL cannot infer the type
(`%s::bigint` in a SELECT list, `%s::text || ...`). Errors are Django's (wrap_database_errors); Django's
execute wrappers and query log (DEBUG, CaptureQueriesContext) see these statements as they see their own.

DATABASE_PREPARED_STATEMENTS=false falls back to Django's cursors, e.g. behind PgBouncer in transaction
pooling mode without max_prepared_statements.
"""

import functools
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


class PreparedCursor:
    """execute() / fetchone() / rowcount, with Django's execute wrappers and query log still applied."""

    def __init__(self, cursor: Any, connection: Any, *, prepare: bool):
        self._cursor = cursor
        self._connection = connection
        self._prepare = prepare

    def _run(self, sql: str, params: Sequence[Any] | Mapping[str, Any], many: bool, context: dict) -> None:
        if self._prepare:
            self._cursor.execute(sql, params, prepare=True)
        else:
            self._cursor.execute(sql, params)

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> None:
        if not self._prepare:  # Django's own cursor: wrappers and logging are its business
            self._cursor.execute(sql, params)
            return
        _execute_wrapped(self._connection, self._run, sql, params, {"connection": self._connection, "cursor": self})

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


def _execute_wrapped(
    connection: Any, run, sql: str, params: Sequence[Any] | Mapping[str, Any], context: dict, how: str = "prepared"
) -> None:
    """run(sql, params, many, context) through the connection's execute wrappers, logged as Django logs its own
    (the statement, then how it was sent and its parameters)."""
    executor = run
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    if not connection.queries_logged:
        executor(sql, params, False, context)
        return
    start = time.monotonic()
    try:
        executor(sql, params, False, context)
    finally:
        connection.queries_log.append(
            {"sql": f"{sql} -- {how}, params {list(params)!r}", "time": f"{time.monotonic() - start:.3f}"}
        )


@contextmanager
def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[PreparedCursor]:
    connection = connections[using]
    if not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            yield PreparedCursor(cursor, connection, prepare=False)
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = psycopg.Cursor(connection.connection)
        try:
            yield PreparedCursor(cursor, connection, prepare=True)
        finally:
            cursor.close()


# Arrays as PostgreSQL array literals. psycopg adapts a Python list element by element in Python: for the five
# text arrays and the numeric array of an advance that was 45 us of the request's CPU, against 4 us for the same
# values as literals (docs/benchmarks.md). Use them with an explicit cast: `%s::text[]`, `%s::numeric[]`.


def text_array(values: Iterable[str]) -> str:
    """A text[] parameter as one literal: every element quoted (so NULL, empty text, commas, braces and spaces
    stay text), backslash and double quote escaped. Elements are str, never None; text cannot hold NUL, which
    PostgreSQL refuses here as it refuses it in any text parameter."""
    return "{" + ",".join('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values) + "}"


def numeric_array(values: Iterable[Decimal]) -> str:
    """A numeric[] parameter as one literal, in fixed-point notation (never an exponent)."""
    return "{" + ",".join(format(value, "f") for value in values) + "}"


# A caller's statement in the round trip of the operation it guards. The API claims an idempotency key (and
# records the request's nonce) before the operation runs, and the operation must not run unless the claim is
# fresh: two statements, two round trips, of which the first decides nothing the database could not decide
# itself. A gate runs first inside the operation's own statement instead:
#
#     WITH <gate's CTEs>, gate AS MATERIALIZED (SELECT <gate's columns>)
#     SELECT gate.*, operation.* FROM gate
#       LEFT JOIN LATERAL (SELECT * FROM (<operation's SELECT>) o WHERE gate.open OFFSET 0) operation ON true
#
# `OFFSET 0` keeps the subquery whole, so `gate.open` is its one-time filter: when the gate is closed the
# operation's SELECT (a call of a function that writes) is never executed, not merely filtered afterwards
# (tests/config/test_db.py proves it by a write).


class GateClosed(Exception):
    """The gate of a gated statement stayed closed: nothing of the operation's statement ran. Its row is on the
    gate (Gate.row); the gate's owner reads it."""


class Gate:
    """A statement of the caller's to run first, in the same round trip, when the operation executes its
    statement with gated_fetchone(): `ctes` (CTE definitions, which may write), then `columns` (a select list
    over them whose first column is the boolean `open`), with `params` for both in text order. After the
    statement ran, `row` holds the gate's columns (`open` first)."""

    def __init__(self, *, ctes: str, columns: str, params: Sequence[Any], width: int):
        self.ctes = ctes.strip()
        self.columns = columns.strip()
        self.params = list(params)
        self.width = width  # number of columns, `open` included
        self.row: tuple | None = None

    def sql(self) -> str:
        """The gate as a statement on its own (for a caller whose operation ran no gated statement)."""
        return f"WITH {self.ctes} SELECT {self.columns}"


class FinishDeclined(Exception):
    """A gated statement's Finish refused the outcome (raised its `declined` SQLSTATE): the whole statement was
    undone, the gate's writes and the operation's with it; nothing of it remains."""


class Finish:
    """The caller's last step in a gated statement, after the operation: an expression (`sql`, with `params` in
    text order) over the gate's and the operation's columns (`gate.<name>`, `operation.<name>`), evaluated once
    the operation ran. Outside a transaction the statement is one transaction of its own, so a Finish can store
    what the caller would otherwise store in a second statement before its COMMIT: one round trip for the
    whole request instead of three (BEGIN, the statement, the last write with COMMIT). It raises SQLSTATE
    `declined` for any outcome it does not take (the gate closed, a refusal): the statement is then undone and
    gated_fetchone raises FinishDeclined, and the caller takes its transactional way. After the statement,
    `value` holds the expression's value."""

    def __init__(self, *, sql: str, params: Sequence[Any], declined: str):
        self.sql = sql
        self.params = list(params)
        self.declined = declined
        self.value: Any = None


def gated_fetchone(
    cursor: PreparedCursor, gate: Gate | None, sql: str, params: Sequence[Any], finish: Finish | None = None
) -> tuple | None:
    """The one row of `sql` (a SELECT), with `gate` run first in the same statement when there is one, and
    `finish` (which needs a gate) last.

    None when the gate stayed closed: then `sql` did not run (the caller raises GateClosed, outside any atomic
    block of its own, which an exception would mark for rollback). A gate runs once: a second call with it runs
    `sql` alone."""
    if gate is None or gate.row is not None:
        if finish is not None:
            raise ValueError("a Finish runs only in a gated statement, with the gate's first run")
        cursor.execute(sql, params)
        return cursor.fetchone()
    last = f", {finish.sql}" if finish is not None else ""
    try:
        cursor.execute(
            f"WITH {gate.ctes}, gate AS MATERIALIZED (SELECT {gate.columns})"
            f" SELECT gate.*, operation.*{last} FROM gate"
            f" LEFT JOIN LATERAL (SELECT * FROM ({sql}) o WHERE gate.open OFFSET 0) operation ON true",
            [*gate.params, *(finish.params if finish is not None else ()), *params],  # in text order
        )
    except Exception as exc:
        # psycopg's error from a prepared cursor, Django's (wrapping it) from Django's own cursor.
        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        if finish is not None and getattr(cause, "sqlstate", None) == finish.declined:
            raise FinishDeclined() from exc
        raise
    row = cursor.fetchone()
    if finish is not None:
        row, finish.value = row[:-1], row[-1]
    gate.row = row[: gate.width]
    return row[gate.width :] if gate.row[0] else None


class Slot:
    """A value the database decides, standing in an object rendered before the statement that decides it (with
    a Finish): it formats (`f"{slot:.2f}"`, `slot.isoformat()`) as a token that slot_template() turns into
    PostgreSQL format()'s `%<number>$s`, so that the statement fills in the text rendered in Python. The
    tokens carry a random mark of the process: a client's text cannot spell one."""

    MARK = f"slot{secrets.token_hex(12)}n"
    _TOKEN_RE = re.compile(f'"{MARK}([0-9]+)"')

    def __init__(self, number: int):
        self.token = f"{self.MARK}{number}"

    def __format__(self, spec: str) -> str:
        return self.token

    def isoformat(self) -> str:
        return self.token


def slot_template(json_text: str) -> str:
    """JSON text whose strings may be Slot tokens, as a format() template: each such string (whole, quotes kept)
    becomes `"%<number>$s"`, every other `%` doubled. The values filled in must need no JSON escaping."""
    return Slot._TOKEN_RE.sub(lambda match: f'"%{match[1]}$s"', json_text.replace("%", "%%"))


def commit_with(sql: str, params: Sequence[Any], using: str = DEFAULT_DB_ALIAS) -> bool:
    """Run `sql` (a statement whose failure must prevent the COMMIT: it raises) and COMMIT, in one round trip,
    when this is the outermost atomic block's last statement; returns True then. Django's own COMMIT at the
    block's end then finds the transaction committed and sends nothing; its on_commit hooks run as always.

    Elsewhere (inside an outer atomic block, e.g. a test's; a block that does not commit on exit, under manual
    transaction management) it runs `sql` alone and returns False: the COMMIT stays Django's. Sent with the
    simple query protocol (the parameters as literals, quoted by libpq), which is what allows two statements in
    one message (PgBouncer in transaction mode passes it as it is); an error in the first skips the COMMIT and
    leaves the transaction to Django's rollback. Make it the block's last statement: one after it would run in a
    new transaction of its own (psycopg begins one), which Django's COMMIT at the block's end then commits."""
    connection = connections[using]
    if not (
        connection.in_atomic_block and connection.commit_on_exit and len(connection.atomic_blocks) == 1
    ):
        with prepared_cursor(using) as cursor:
            cursor.execute(sql, params)
        return False
    connection.validate_no_broken_transaction()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = psycopg.ClientCursor(connection.connection)
        try:
            _execute_wrapped(
                connection, lambda sql, params, many, context: cursor.execute(sql, params), f"{sql}; COMMIT",
                params, {"connection": connection, "cursor": cursor}, how="literals",
            )
        finally:
            cursor.close()
    return True
