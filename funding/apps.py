from django.apps import AppConfig


class FundingConfig(AppConfig):
    name = "funding"
    verbose_name = "Funding"
    default_auto_field = "django.db.models.BigAutoField"
