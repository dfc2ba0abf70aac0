"""`make run` and `make stop`: the engine on this machine, from nothing, with a calm terminal.

    python scripts/run_all.py          # set up, start web + worker + beat, wait for Ctrl-C
    python scripts/run_all.py stop     # stop a `make run` of this checkout and its embedded PostgreSQL

`run` picks PostgreSQL and the broker (scripts/pick_services.py: $DATABASE_URL / $CELERY_BROKER_URL when set
and answering, otherwise the embedded PostgreSQL and kombu's filesystem transport) and records them in
var/services.env, which the settings read in local runs when the environment does not set them: so
`manage.py simulate_day` (or any command) in another shell reaches the same database. Then migrate and
seed_demo (output in var/log/setup.log), then the three processes, each in its own process group with its
output in var/log/<name>.log, one status line each, and the URLs and demo logins once.

Ctrl-C (or SIGTERM, or `make stop` from another shell) stops web, worker and beat, waits for them, and
kills whatever of their process groups is left: no orphans. The embedded PostgreSQL is left running on
purpose, so the README's `manage.py ...` commands keep working after Ctrl-C and the next `make run` starts at
once; `make stop` stops it (a server given by DATABASE_URL is never touched).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
LOG_DIR = VAR / "log"
SERVICES_ENV = VAR / "services.env"
PIDS_FILE = VAR / "run" / "make-run.json"
PY = sys.executable
QUEUES = "celery,events,disbursement,webhooks,nightly"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def say(text: str = "") -> None:
    print(text, flush=True)


def status(mark: str, name: str, what: str, log: str) -> None:
    say(f"  {mark:<4} {name:<10} {what:<52} {log}")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def write_services_env(database_url: str, broker_url: str) -> None:
    SERVICES_ENV.parent.mkdir(parents=True, exist_ok=True)
    SERVICES_ENV.touch(mode=0o600)
    SERVICES_ENV.write_text(
        "# Written by `make run`: the PostgreSQL and broker it uses. The settings read this file in local runs\n"
        "# (DJANGO_ENV=local) for what the environment and .env do not set.\n"
        f"DATABASE_URL={database_url}\nCELERY_BROKER_URL={broker_url}\n",
        encoding="utf-8",
    )


def setup_step(name: str, argv: list[str], env: dict[str, str], what: str) -> None:
    """A set-up command with its output appended to var/log/setup.log; stops make run if it fails."""
    with open(LOG_DIR / "setup.log", "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(argv[1:])}\n")
        log.flush()
        result = subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        status("FAIL", name, f"exit code {result.returncode}", "var/log/setup.log")
        tail = (LOG_DIR / "setup.log").read_text(encoding="utf-8").splitlines()[-15:]
        say("\n".join("       " + line for line in tail))
        sys.exit(result.returncode)
    status("ok", name, what, "var/log/setup.log")


class Child:
    """One long-running process in its own process group (Ctrl-C reaches only us; we stop it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self.log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_has(self, text: str) -> bool:
        try:
            return text in self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (a pool child, a worker that ignored SIGTERM) goes now.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.log.close()


def wait_ready(child: Child, ready, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.3)
    return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL built here)
            return response.status == 200
    except OSError:
        return False


def run() -> None:
    import pick_services

    port = int(os.environ.get("PORT", "8000"))
    if not port_free(port):
        raise SystemExit(f"127.0.0.1:{port} is in use (another `make run`?). Stop it, or: make run PORT=8001")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "setup.log").write_text("", encoding="utf-8")
    database_url, db_label, broker_url, broker_label = pick_services.pick(None, None)
    say(f"Using {db_label}; {broker_label}.")
    write_services_env(database_url, broker_url)
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true"),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "API_BASE_URL": base_url,
        "PYTHONUNBUFFERED": "1",
    }

    setup_step("database", [PY, "manage.py", "migrate", "--noinput"], env, "migrations applied")
    setup_step(
        "demo data",
        [PY, "manage.py", "seed_demo", "--json", "--json-file", str(VAR / "demo.json")],
        env,
        "staff, companies, channels, fresh API keys",
    )

    children: list[Child] = []
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        say("\nStopping web, worker and beat ...")
        for child in children:
            child.terminate()
        deadline = time.monotonic() + 20
        for child in children:
            child.reap(deadline)
        PIDS_FILE.unlink(missing_ok=True)
        say("Stopped. The embedded PostgreSQL (if used) keeps running for manage.py commands; `make stop` stops it.")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    specs = [
        (
            "web",
            [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            lambda child: http_ok(f"{base_url}/healthz"),
            f"{base_url}/",
        ),
        (
            "worker",
            [PY, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2", "-Q", QUEUES,
             "-n", f"make-run-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
            lambda child: child.log_has(" ready."),
            f"queues {QUEUES}",
        ),
        (
            "beat",
            [PY, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", "--pidfile="],
            lambda child: child.log_has("beat: Starting"),
            "schedule from the database (django-celery-beat)",
        ),
    ]
    for name, argv, _ready, _what in specs:
        children.append(Child(name, argv, env))
    PIDS_FILE.parent.mkdir(parents=True, exist_ok=True)
    PIDS_FILE.write_text(json.dumps({"run_all": os.getpid(), **{c.name: c.proc.pid for c in children}}))
    failed = False
    for child, (name, _argv, ready, what) in zip(children, specs, strict=True):
        if wait_ready(child, lambda child=child, ready=ready: ready(child), timeout=90):
            status("ok", name, what, f"var/log/{name}.log")
        elif child.proc.poll() is not None:
            status("FAIL", name, f"exited with code {child.proc.returncode}", f"var/log/{name}.log")
            failed = True
        else:
            status("slow", name, "not ready after 90 s; still starting", f"var/log/{name}.log")
    if failed:
        stop()

    demo = json.loads((VAR / "demo.json").read_text(encoding="utf-8"))
    admin = f"{base_url}/admin/"
    say()
    say(f"Staff console   {admin}   (dashboard {admin}console/)")
    say(f"API             {base_url}/api/v1/   docs {base_url}/api/docs/   schema {base_url}/api/schema/")
    say(f"Business date   {demo['business_date']}")
    say("Demo logins (one per role):")
    for staff in demo["staff"]:
        say(f"  {staff['username']:<22} {staff['password']:<40} {staff['role']}")
    say("API keys and secrets of the demo companies: var/demo.json (readable only by you).")
    say("Ctrl-C stops web, worker and beat.")

    while True:
        for child in children:
            if child.proc.poll() is not None:
                say(f"{child.name} exited with code {child.proc.returncode}; see var/log/{child.name}.log")
                stop()
        time.sleep(1)


def _alive_with(pid: int, text: str) -> bool:
    """pid is alive and its command line contains text (a recycled pid is left alone)."""
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def stop_all() -> None:
    import embedded_pg

    if PIDS_FILE.exists():
        pids = json.loads(PIDS_FILE.read_text())
        leader = pids.pop("run_all", None)
        if leader and _alive_with(leader, "run_all.py"):
            os.kill(leader, signal.SIGTERM)  # it stops its children itself
            for _ in range(100):
                if not _alive_with(leader, "run_all.py"):
                    break
                time.sleep(0.25)
        for name, pid in pids.items():  # `make run` itself died (kill -9): its children may still run
            if _alive_with(pid, "manage.py" if name == "web" else "celery"):
                os.killpg(pid, signal.SIGTERM)
                time.sleep(2)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        PIDS_FILE.unlink(missing_ok=True)
        say("make run stopped")
    else:
        say("no make run running")
    say("embedded PostgreSQL stopped" if embedded_pg.stop() else "embedded PostgreSQL was not running")


if __name__ == "__main__":
    os.chdir(ROOT)
    if len(sys.argv) > 1 and sys.argv[1] == "stop":
        stop_all()
    else:
        run()
