from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from events.api import click_view
from postbacks.api import EventBatchView, EventView
from project.views import healthz, metrics

admin.site.site_header = "Postback server"
admin.site.site_title = "Postback server"
admin.site.index_title = "Configuration and delivery"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/events", EventView.as_view(), name="api-events"),
    path("api/v1/events/batch", EventBatchView.as_view(), name="api-events-batch"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("t/<str:tracker_id>", click_view, name="click"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
