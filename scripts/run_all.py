"""`make run`: the web server, a Celery worker and Celery beat, stopped together with Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def main() -> None:
    (ROOT / "var" / "celery" / "queue").mkdir(parents=True, exist_ok=True)
    (ROOT / "var" / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    commands = {
        "web": [PY, "manage.py", "runserver", "127.0.0.1:8000", "--noreload"],
        "worker": [PY, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2",
                   "-Q", "celery,events,disbursement,webhooks,nightly"],
        "beat": [PY, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO"],
    }
    processes = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}
    print("Engine running: admin http://127.0.0.1:8000/admin/  API http://127.0.0.1:8000/api/v1/  (Ctrl-C stops)")

    def stop(*_args) -> None:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        for name, proc in processes.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the rest", file=sys.stderr)
                stop()
        time.sleep(1)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
