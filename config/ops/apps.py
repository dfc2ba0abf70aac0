from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "config.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Celery signal handlers: request id, job logs and metrics in every worker process.
        from config.ops import celery_hooks  # noqa: F401
        from config.ops.staff_otp import admin_hide_backup_codes, admin_require_otp

        admin_require_otp()
        admin_hide_backup_codes()
