from django.contrib import admin
from django.urls import path

admin.site.site_header = "Postback server"
admin.site.site_title = "Postback server"
admin.site.index_title = "Configuration and delivery"

urlpatterns = [
    path("admin/", admin.site.urls),
]
