"""Template context for every staff page: whose console this is and which environment it runs in.

Staff keep a local or staging console open beside production; the banner says which is which before anyone
approves a limit or books a return in the wrong one.
"""

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

ENVIRONMENT_LABELS = {
    "production": _("Production"),
    "local": _("Local (demo data)"),
    "test": _("Test"),
}


def console_environment(request: HttpRequest) -> dict:
    return {
        "bank_name": settings.BANK_NAME,
        "environment": settings.DJANGO_ENV,
        "environment_label": ENVIRONMENT_LABELS.get(settings.DJANGO_ENV, settings.DJANGO_ENV),
        "environment_is_production": settings.DJANGO_ENV == "production",
    }
