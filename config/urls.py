from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/", include("funding.api.urls")),
    path("", include("funding.urls")),
]

handler404 = "funding.api.errors.handler404"
handler500 = "funding.api.errors.handler500"
