import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("advance_engine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _use_django_logging(**_) -> None:
    """Workers and beat log like the web processes: Django's LOGGING (JSON lines), untouched by Celery."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
