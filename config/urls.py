from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise answer these paths.
    path(f"{settings.ADMIN_URL}console/", include("funding.console.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("funding.api.urls")),
    path("", include("funding.urls")),
]

handler404 = "funding.api.errors.handler404"
handler500 = "funding.api.errors.handler500"
