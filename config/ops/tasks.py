from celery import shared_task

from config.ops.retention import retention_purge


@shared_task(name="config.ops.tasks.retention_purge_task")
def retention_purge_task() -> dict[str, int]:
    return retention_purge()
