"""gunicorn settings for the API and admin: `gunicorn -c config/gunicorn.py config.wsgi`.

Every value can be changed from the environment (GUNICORN_* / WEB_CONCURRENCY), so one file serves all hosts.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: each request holds one database connection for its duration; scale with processes.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then (memory growth), staggered so they never restart together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Never load the app before forking: database and broker connections must not be shared across processes.
preload_app = False
# Only the load balancer may say the request came over HTTPS (X-Forwarded-Proto).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app writes one JSON line per request itself; gunicorn's own access log would only duplicate it.
accesslog = None
logger_class = "config.ops.logs.GunicornLogger"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's own lines (start, worker timeouts, crashes) in the same JSON shape as the app's.
if os.environ.get("LOG_FORMAT", "json") == "json":
    _stderr = {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": {"()": "config.ops.logs.JsonFormatter"}},
        "handlers": {"console": _stderr, "error_console": _stderr},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        },
    }
proc_name = "advance-engine-web"
# gunicorn 27 opens a control socket in $HOME by default; several instances on one host would share it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
limit_request_line = 8190
limit_request_field_size = 8190


def on_starting(server) -> None:
    from config.ops.metrics import multiprocess_dir_reset

    multiprocess_dir_reset()


# Objects allocated (net) between two collections of the youngest generation; Python's default is 700. A request
# allocates thousands of short-lived objects and leaves ~70 in reference cycles, so at 700 the collector runs
# several times per request and scans each request's live objects again every time; at 50,000 it runs every
# few dozen requests and the uncollected cycles hold a few MB at most. In-process, alternating blocks of
# requests: 4-11% less Python CPU per request (docs/benchmarks.md). 0 keeps Python's default.
GC_GEN0_THRESHOLD = int(os.environ.get("GUNICORN_GC_GEN0_THRESHOLD", "50000"))


def post_worker_init(worker) -> None:
    # The app is loaded: its objects (modules, models, URL patterns) live as long as the worker, so the
    # garbage collector need not scan them again in every full collection (gc.freeze).
    import gc

    gc.collect()
    gc.freeze()
    if GC_GEN0_THRESHOLD > 0:
        gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
