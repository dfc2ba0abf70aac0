import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("advance_engine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _database_connections_as_around_a_request(sender=None, **_) -> None:
    """What Django does at a request's start and end: drop a connection past CONN_MAX_AGE or unusable after an
    error, keep a healthy persistent one (the fix-up's own closing is spaced by CELERY_DB_REUSE_MAX). Never for
    a task run eagerly: it runs inside its caller, maybe inside the caller's transaction."""
    if sender is None or getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@signals.setup_logging.connect
def _use_django_logging(**_) -> None:
    """Workers and beat log like the web processes: Django's LOGGING (JSON lines), untouched by Celery."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
