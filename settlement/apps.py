from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "settlement"
    verbose_name = "Settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The nightly jobs' admin lives apart from settlement/admin.py (payouts and channels).
        from settlement import admin_nightly  # noqa: F401
