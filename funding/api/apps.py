from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The payment-company HTTP API: keys, signed requests, idempotency, webhook delivery."""

    name = "funding.api"
    label = "api"
    verbose_name = "Payment-company API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extension describing the signature scheme.
        from funding.api import schema  # noqa: F401
