"""Decide which PostgreSQL and broker a run uses and print them as shell exports.

PostgreSQL: $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) when it answers, otherwise
the embedded server. Broker: $CELERY_BROKER_URL (default redis://127.0.0.1:6379/15) when it answers,
otherwise kombu's filesystem transport (no server needed).
"""

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))


def answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def pick(default_db: str | None, default_broker: str | None) -> tuple[str, str, str, str]:
    """A default of None means: without the variable set, use the embedded server / filesystem transport."""
    db_url = os.environ.get("DATABASE_URL") or default_db or ""
    if db_url and answers(db_url, 5432):
        db_label = f"PostgreSQL at {urlparse(db_url).hostname}:{urlparse(db_url).port or 5432}"
    else:
        import embedded_pg

        db_url = embedded_pg.start()
        if os.environ.get("DATABASE_URL"):
            reason = "no server answered at DATABASE_URL"
        else:
            reason = "no server answered at the default" if default_db else "DATABASE_URL not set"
        db_label = f"embedded PostgreSQL on 127.0.0.1:{urlparse(db_url).port}, data under var/pgdata ({reason})"
    broker = os.environ.get("CELERY_BROKER_URL") or default_broker or ""
    if broker.startswith(("redis://", "amqp://", "pyamqp://")) and answers(broker, 6379 if "redis" in broker else 5672):
        broker_label = f"broker {broker.split('@')[-1]}"
    else:
        broker = "filesystem://"
        broker_label = "kombu filesystem transport (no broker server answered)"
    return db_url, db_label, broker, broker_label


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "test"
    if mode == "test":
        result = pick("postgres://postgres@127.0.0.1:5432/postgres", "redis://127.0.0.1:6379/15")
    else:
        result = pick(None, None)
    db_url, db_label, broker, broker_label = result
    print(f"export DATABASE_URL='{db_url}'")
    print(f"export CELERY_BROKER_URL='{broker}'")
    print(f"echo 'Using {db_label}; {broker_label}' >&2")
