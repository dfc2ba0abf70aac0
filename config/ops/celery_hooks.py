"""Celery: carry the request id from the web request into its tasks, log and time every task.

Connected when Django loads the `config.ops` app, so it is active in workers, beat and web processes alike.
"""

import logging
import os
import time

from celery import signals

from config.ops import metrics
from config.ops.context import clear_context, request_id_new, request_id_var

logger = logging.getLogger("engine.task")
_started: dict[str, float] = {}


@signals.before_task_publish.connect
def _publish_request_id(headers: dict | None = None, **_) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id:
        headers.setdefault("request_id", request_id)


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, task=None, **_) -> None:
    clear_context()
    request_id_var.set(getattr(task.request, "request_id", None) or task_id or request_id_new())
    _started[task_id] = time.monotonic()
    logger.info("task %s started", task.name, extra={"task": task.name, "task_id": task_id, "step": "start"})


@signals.task_postrun.connect
def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **_) -> None:
    started = _started.pop(task_id, None)
    elapsed = time.monotonic() - started if started is not None else 0.0
    outcome = "ok" if state == "SUCCESS" else (state or "unknown").lower()
    metrics.job_observe(task.name, elapsed, outcome=outcome)
    logger.info(
        "task %s finished %s",
        task.name,
        state,
        extra={"task": task.name, "task_id": task_id, "step": "finish", "state": state,
               "duration_ms": round(elapsed * 1000, 1)},
    )
    clear_context()


@signals.celeryd_init.connect
def _worker_starting(**_) -> None:
    metrics.multiprocess_dir_reset()


@signals.worker_init.connect
def _declare_engine_queues(sender=None, **_) -> None:
    """Declare every engine queue before consuming, whichever queues this worker serves.

    A task published to a queue no worker has declared yet would be dropped by the broker, and RabbitMQ's
    delayed delivery binds all queues at worker start; declaring is idempotent.
    """
    app = sender.app if sender is not None else None
    if app is None or not app.conf.broker_url.startswith(("amqp://", "pyamqp://", "amqps://")):
        return
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues or ():
            queue(channel).declare()


@signals.worker_ready.connect
def _worker_metrics_server(**_) -> None:
    """With CELERY_METRICS_PORT set, the worker serves its own /metrics (all its pool processes summed)."""
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(int(port), addr=os.environ.get("CELERY_METRICS_ADDR", "127.0.0.1"), registry=registry)


@signals.worker_process_shutdown.connect
def _worker_process_gone(pid: int | None = None, **_) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@signals.beat_init.connect
def _beat_prune_stale_entries(**_) -> None:
    """Before the database scheduler reads its table: disable what the code no longer schedules."""
    from config.ops.beat import beat_schedule_prune

    beat_schedule_prune()
