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
        executor = self._run
        context = {"connection": self._connection, "cursor": self}
        for wrapper in reversed(self._connection.execute_wrappers):
            executor = functools.partial(wrapper, executor)
        if not self._connection.queries_logged:
            executor(sql, params, False, context)
            return
        start = time.monotonic()
        try:
            executor(sql, params, False, context)
        finally:
            self._connection.queries_log.append(
                {"sql": f"{sql} -- prepared, params {list(params)!r}", "time": f"{time.monotonic() - start:.3f}"}
            )

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


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
