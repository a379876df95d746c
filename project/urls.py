from django.contrib import admin
from django.urls import path, reverse_lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from events.api import click_view
from postbacks.api import EventBatchView, EventView
from postbacks.erasure_api import ErasureDetailView, ErasureView
from postbacks.views import healthz, metrics

admin.site.site_header = "Postback server"
admin.site.site_title = "Postback server"
admin.site.index_title = "Configuration and delivery"
# "View site" opens the API's docs: this server has no pages of its own besides the admin.
admin.site.site_url = reverse_lazy("api-docs")

urlpatterns = [
    # The server's root: the admin's index (its login first), not a debug 404.
    path("", RedirectView.as_view(url=reverse_lazy("admin:index")), name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/events", EventView.as_view(), name="api-events"),
    path("api/v1/events/batch", EventBatchView.as_view(), name="api-events-batch"),
    path("api/v1/erasures", ErasureView.as_view(), name="api-erasures"),
    path("api/v1/erasures/<str:erasure_id>", ErasureDetailView.as_view(), name="api-erasure"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("t/<str:tracker_id>", click_view, name="click"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
