from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from events.admin_scoping import ScopedModelAdmin
from postbacks.forms import FIELD_INPUT_PREFIX, PartnerConfigurationForm, PostbackConfigurationForm
from postbacks.models import PartnerConfiguration, PostbackConfiguration
from postbacks.rendering import RenderError, render_postback, sample_values


@admin.register(PartnerConfiguration)
class PartnerConfigurationAdmin(ScopedModelAdmin):
    form = PartnerConfigurationForm
    list_display = ["partner", "app", "partner_kind", "postback_count", "updated_at"]
    list_filter = ["partner__kind", "partner", ("app", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["partner__name", "partner__slug", "app__name", "app__package_name"]
    list_select_related = ["partner", "app"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The network-specific inputs are added per partner in the form's __init__; the
        # form class itself only declares app and partner (minus the read-only ones).
        kwargs["fields"] = ["app", "partner"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ["app", "partner"]})]
        if obj is not None and not self.has_change_permission(request, obj):
            return [*fieldsets, ("Network-specific fields", {"fields": ["field_values_display"]})]
        form_class = self.get_form(request, obj)
        data = request.POST if request.method == "POST" else None
        form = form_class(data=data, instance=obj, initial=request.GET.dict())
        network_fields = [name for name in form.fields if name.startswith(FIELD_INPUT_PREFIX)]
        if network_fields:
            fieldsets.append(("Network-specific fields", {"fields": network_fields}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # Moving a configuration to another app or partner would silently re-point its postbacks.
        return ["app", "partner", "field_values_display"] if obj is not None else []

    @admin.display(description="values")
    def field_values_display(self, config: PartnerConfiguration) -> str:
        rows = [
            (
                field.label,
                "•••••• (secret)"
                if field.is_secret and config.field_values.get(field.name)
                else config.field_values.get(field.name) or "—",
            )
            for field in config.partner.fields.all()
        ]
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows) or "—"

    @admin.display(description="kind", ordering="partner__kind")
    def partner_kind(self, config: PartnerConfiguration) -> str:
        return config.partner.get_kind_display()

    @admin.display(description="postbacks")
    def postback_count(self, config: PartnerConfiguration) -> int:
        return config.postbacks.count()


@admin.register(PostbackConfiguration)
class PostbackConfigurationAdmin(ScopedModelAdmin):
    form = PostbackConfigurationForm
    list_display = [
        "__str__",
        "app",
        "event",
        "kind",
        "partner_name",
        "status",
        "delay_seconds",
        "retry_attempts",
        "delivery_method",
        "updated_at",
    ]
    list_filter = [
        "status",
        "kind",
        "event",
        "delivery_method",
        "partner_configuration__partner",
        ("app", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["title", "event", "destination_url", "app__name", "partner_configuration__partner__name"]
    list_select_related = ["app", "partner_configuration__partner"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["app", "event", "kind", "status", "title", "match_event"]}),
            (
                "Certified postback (endpoint and parameters from the partner's managed template)",
                {"fields": ["partner_configuration", "partner_event_name", "delivery_method"]},
            ),
            (
                "Custom postback (your own endpoint)",
                {"fields": ["destination_url", "method", "macros"]},
            ),
            ("Delivery", {"fields": ["supply_network_data", "delay_seconds", "retry_attempts"]}),
        ]
        if obj is not None:
            fieldsets.append(("Preview: the request a sample event would produce", {"fields": ["request_preview"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return ["app", "request_preview"] if obj is not None else []

    @admin.display(description="partner", ordering="partner_configuration__partner__name")
    def partner_name(self, postback: PostbackConfiguration) -> str:
        return postback.partner.name if postback.partner else "—"

    @admin.display(description="request")
    def request_preview(self, postback: PostbackConfiguration) -> str:
        try:
            rendered = render_postback(configuration=postback, values=sample_values(configuration=postback))
        except RenderError as error:
            return format_html('<p class="errornote">{}</p>', str(error))
        body = rendered.body
        if rendered.headers.get("Content-Type") == "application/json" and body:
            body = json.dumps(json.loads(body), indent=2)
        headers = "\n".join(f"{name}: {value}" for name, value in rendered.headers.items())
        text = (
            f"{rendered.method} {rendered.url}" + (f"\n{headers}" if headers else "") + (f"\n\n{body}" if body else "")
        )
        return format_html(
            '<pre style="white-space: pre-wrap; word-break: break-all">{}</pre>'
            "<p>Sample values; the delivery log will show each real request.</p>",
            text,
        )
