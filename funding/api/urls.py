from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from funding.api import views

v1 = [
    path("credit-line", views.CreditLineView.as_view(), name="credit-line"),
    path("advances", views.AdvanceListCreateView.as_view(), name="advances"),
    path("advances/<str:advance_id>", views.AdvanceDetailView.as_view(), name="advance-detail"),
    path("advances/<str:advance_id>/cancel", views.AdvanceCancelView.as_view(), name="advance-cancel"),
    path("repayments", views.RepaymentListView.as_view(), name="repayments"),
    path("statements/<str:business_date>", views.StatementView.as_view(), name="statement"),
    path("webhook-endpoint", views.WebhookEndpointView.as_view(), name="webhook-endpoint"),
    path("webhook-endpoint/test", views.WebhookEndpointTestView.as_view(), name="webhook-endpoint-test"),
    path("events", views.EventListView.as_view(), name="events"),
]

# The schema and the docs are the only endpoints served without a signature.
open_access = {
    "authentication_classes": [],
    "permission_classes": [],
    "content_negotiation_class": DefaultContentNegotiation,
}

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(**open_access), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", **open_access), name="api-docs"),
    path("v1/", include(v1)),
    # Unknown /api/ paths answer the JSON error shape even with DEBUG on (where handler404 is not used).
    re_path(r"^.*$", views.api_not_found),
]
