from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "settlement"
    verbose_name = "Settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Settlement executes what funding decides: it listens to funding's signals (funding never imports it).
        from funding.signals import advance_reserved
        from settlement.receivers import on_advance_reserved

        advance_reserved.connect(on_advance_reserved, dispatch_uid="settlement.on_advance_reserved")
