from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The payment-company HTTP API: keys, signed requests, idempotency, webhook delivery."""

    name = "funding.api"
    label = "api"
    verbose_name = "Payment-company API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extension (signature scheme) and the enqueue-on-commit of webhook events.
        from funding.api import schema, signals  # noqa: F401
