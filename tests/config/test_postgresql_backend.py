"""config/postgresql: the health check sends `SELECT 1` only when the socket has something to read."""

import select
import time

import psycopg
import pytest
from django.db import connection, connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_connection():
    """A second connection to the test database, outside the test's transaction (idle in autocommit)."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


@pytest.fixture
def statements(monkeypatch):
    """The SQL psycopg cursors execute (the real cursors run it)."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recording(self, query, *args, **kwargs):
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return sent


def test_the_engine_uses_this_backend():
    assert type(connections["default"]).__module__ == "config.postgresql.base"
    assert connection.vendor == "postgresql"


def test_a_healthy_idle_connection_is_usable_without_a_statement(own_connection, statements):
    assert own_connection.is_usable() is True
    assert statements == []


def test_a_connection_in_a_transaction_is_checked_by_django_s_select_1(own_connection, statements):
    own_connection.set_autocommit(False)
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT 41")
    statements.clear()
    assert own_connection.is_usable() is True
    assert statements == ["SELECT 1"]
    own_connection.rollback()


def test_a_session_the_server_ended_is_found_unusable_and_replaced(own_connection, statements):
    pid = own_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone() == (True,)
    socket = own_connection.connection.pgconn.socket
    deadline = time.monotonic() + 5
    while not select.select([socket], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the terminated session's socket never became readable"
    statements.clear()
    assert own_connection.is_usable() is False
    assert statements == ["SELECT 1"]  # readable: Django's own check decided

    # What Django does at the start of a request: the failed check closes it, the next query reconnects.
    own_connection.health_check_enabled = True
    own_connection.health_check_done = False
    own_connection.close_if_health_check_failed()
    assert own_connection.connection is None
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
