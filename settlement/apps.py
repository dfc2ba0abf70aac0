from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "settlement"
    verbose_name = "Settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Settlement executes what funding decides: it listens to funding's signals (funding never imports it).
        from funding.signals import advance_reserved, bank_statement_imported
        from settlement.receivers import on_advance_reserved, on_bank_statement_imported

        advance_reserved.connect(on_advance_reserved, dispatch_uid="settlement.on_advance_reserved")
        bank_statement_imported.connect(
            on_bank_statement_imported, dispatch_uid="settlement.on_bank_statement_imported"
        )
