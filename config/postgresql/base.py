"""Django's PostgreSQL backend with a health check that costs no round trip on a connection that is fine.

Django's check (CONN_HEALTH_CHECKS, on by default here) sends `SELECT 1` before the first query of every
request on a persistent connection: a whole round trip, on the API's hot path one of eight (docs/benchmarks.md
section 1). An idle connection to a live server has nothing to read. A server that ends a session (restart,
fast or immediate shutdown, pg_terminate_backend, a pooler's or a proxy's timeout) sends its FATAL error and
closes the socket, which then reads as ready. So a socket with nothing to read is taken as usable without a
statement, and a readable one (or any doubt) is left to Django's own `SELECT 1`, which decides as before.
What a statement would catch and this does not: a server gone silently (no FIN, e.g. a host lost behind an
address taken over); `SELECT 1` then waits on TCP as long as the request's first query would.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None:
            return False
        try:
            idle = not connection.closed and connection.info.transaction_status == pq.TransactionStatus.IDLE
            if idle:
                readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
                if not readable:
                    return True
        except (OSError, ValueError, base.Database.Error):
            pass
        return super().is_usable()
