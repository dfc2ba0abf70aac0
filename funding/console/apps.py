from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The bank staff console: roles, dashboard, reports, login throttling (a sub-app of funding)."""

    name = "funding.console"
    label = "console"
    verbose_name = _("Staff console")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from funding.console.admin_labels import admin_labels_translatable
        from funding.console.roles import roles_sync_after_migrate

        # django.contrib.admin comes first in INSTALLED_APPS: its ready() has registered every admin by now.
        admin_labels_translatable()

        # After every migrate (and every test-database flush) the groups match roles.ROLES exactly,
        # including permissions of models added after the data migration ran.
        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="console_roles_sync")
