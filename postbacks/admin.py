from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from events.admin_scoping import ReadOnlyAdminMixin, ScopedModelAdmin
from events.scoping import visible_to
from partners.admin import warn_if_illustrative
from partners.models import Partner
from postbacks import http
from postbacks.dashboard import chart_specs, docs_pages
from postbacks.forms import FIELD_INPUT_PREFIX, PartnerConfigurationForm, PostbackConfigurationForm, chosen_object
from postbacks.models import Attempt, Delivery, Erasure, PartnerConfiguration, PostbackConfiguration
from postbacks.rendering import RenderError, render_postback, requirement_problems, sample_values
from postbacks.sending import mask, masked_headers, secret_values_of, verdict_for
from postbacks.services import deliveries_resend, postback_send_test
from postbacks.statistics import STEPS, WINDOWS, delivery_stats
from project import clock

# The admin's index page is the dashboard (postbacks/dashboard.py): figures of the user's accounts.
admin.site.index_template = "admin/postbacks/dashboard_index.html"

OVERRIDE_FIELDS = ["endpoint_base", "fixed_parameters"]
OVERRIDES_TITLE = "Overrides (optional)"
OVERRIDES_DESCRIPTION = (
    "What this measurement platform sends to the partner, changed without a code change: the endpoint base replaces "
    "the scheme and host of every template's URL and goes before its path; each fixed parameter is sent with every "
    "request, replacing the template's parameter of the same name. See docs/partner-templates.md."
)


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
        kwargs["fields"] = ["app", "partner", *OVERRIDE_FIELDS]
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ["app", "partner"]})]
        if obj is not None and not self.has_change_permission(request, obj):
            return [
                *fieldsets,
                ("Network-specific fields", {"fields": ["field_values_display"]}),
                (OVERRIDES_TITLE, {"fields": OVERRIDE_FIELDS, "description": OVERRIDES_DESCRIPTION}),
            ]
        form_class = self.get_form(request, obj)
        data = request.POST if request.method == "POST" else None
        form = form_class(data=data, instance=obj, initial=request.GET.dict())
        network_fields = [name for name in form.fields if name.startswith(FIELD_INPUT_PREFIX)]
        if network_fields:
            fieldsets.append(("Network-specific fields", {"fields": network_fields}))
        if form.partner is not None:
            fieldsets.append((OVERRIDES_TITLE, {"fields": OVERRIDE_FIELDS, "description": OVERRIDES_DESCRIPTION}))
        return fieldsets

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        warn_if_illustrative(request, obj.partner if obj is not None else context["adminform"].form.partner)
        return super().render_change_form(request, context, add, change, form_url, obj)

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
    change_form_template = "admin/postbacks/postbackconfiguration/change_form.html"
    audit_masked_fields = ("signing_secret",)
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
        if obj is not None and not self.has_change_permission(request, obj):
            secret_fields = ["signing_secret_display"]  # read-only: masked, as partner secrets are
        elif obj is not None and obj.signing_secret:
            secret_fields = ["signing_secret", "remove_signing_secret"]
        else:
            secret_fields = ["signing_secret"]
        fieldsets = [
            (None, {"fields": ["app", "event", "kind", "status", "title", "match_event"]}),
            (
                "Certified postback (endpoint and parameters from the partner's managed template)",
                {"fields": ["partner_configuration", "partner_event_name", "delivery_method"]},
            ),
            (
                "Custom postback (your own endpoint)",
                {"fields": ["destination_url", "method", "macros", *secret_fields]},
            ),
            ("Conditions (all must hold for the postback to fire)", {"fields": ["conditions"]}),
            ("Delivery", {"fields": ["supply_network_data", "delay_seconds", "retry_attempts"]}),
        ]
        if obj is not None:
            fieldsets.append(("Preview: the request a sample event would produce", {"fields": ["request_preview"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return ["app", "request_preview", "signing_secret_display"] if obj is not None else []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        partner = obj.partner if obj is not None else None
        if partner is None and "adminform" in context:
            form = context["adminform"].form
            chosen = chosen_object(form, "partner_configuration") if "partner_configuration" in form.fields else None
            partner = chosen.partner if chosen is not None else None
        warn_if_illustrative(request, partner)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="signing secret")
    def signing_secret_display(self, postback: PostbackConfiguration) -> str:
        return "•••••• (secret)" if postback.signing_secret else "—"

    def get_urls(self):
        test_view = self.admin_site.admin_view(self.send_test_view)
        return [
            path("<int:object_id>/send-test/", test_view, name="postbacks_postbackconfiguration_send_test"),
            *super().get_urls(),
        ]

    def send_test_view(self, request, object_id: int):
        """Send a sample event's request now and show the partner's answer."""
        configuration = self.get_object(request, str(object_id))
        if configuration is None:
            raise Http404
        if request.method != "POST" or not request.user.has_perm("postbacks.resend_delivery"):
            raise PermissionDenied
        try:
            sent, exchange = postback_send_test(configuration=configuration)
        except RenderError as error:
            sent, exchange, problem = None, None, str(error)
        else:
            problem = ""
        secrets = secret_values_of(configuration)
        missing = requirement_problems(configuration=configuration, rendered=sent)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test postback: {configuration}",
            "opts": self.model._meta,
            "original": configuration,
            "problem": problem,
            "requirements_missed": [mask(text, secrets) for text in missing],
            "captured_to": mask(exchange.captured_to, secrets) if exchange else "",
            "request_text": "" if sent is None else request_text(**_parts(sent), secrets=secrets),
            "exchange": exchange,
            "verdict": verdict_for(exchange, configuration=configuration) if exchange else None,
            "response_headers": ""
            if exchange is None
            else "\n".join(f"{name}: {value}" for name, value in exchange.headers.items()),
            "response_body": "" if exchange is None else _pretty(exchange.body),
        }
        return TemplateResponse(request, "admin/postbacks/send_test.html", context)

    @admin.display(description="partner", ordering="partner_configuration__partner__name")
    def partner_name(self, postback: PostbackConfiguration) -> str:
        return postback.partner.name if postback.partner else "—"

    @admin.display(description="request")
    def request_preview(self, postback: PostbackConfiguration) -> str:
        try:
            rendered = render_postback(configuration=postback, values=sample_values(configuration=postback))
        except RenderError as error:
            return format_html('<p class="errornote">{}</p>', str(error))
        secrets = secret_values_of(postback)
        text = request_text(**_parts(rendered), secrets=secrets)
        missing = [
            mask(problem, secrets) for problem in requirement_problems(configuration=postback, rendered=rendered)
        ]
        problems = format_html_join("", '<li class="errornote">{}</li>', ((problem,) for problem in missing))
        capture = http.capture_url(rendered.url)
        return format_html(
            '<pre style="white-space: pre-wrap; word-break: break-all">{}</pre>{}{}'
            "<p>Sample values, secrets masked; the delivery log will show each real request.</p>",
            text,
            format_html("<p>What the partner requires and this misses:</p><ul>{}</ul>", problems) if missing else "",
            format_html(
                "<p>POSTBACK_CAPTURE_URL is set: this would go to <code>{}</code> instead, with the header {}.</p>",
                mask(capture, secrets),
                http.CAPTURE_HEADER,
            )
            if capture
            else "",
        )


def request_text(
    *, method: str, url: str, headers: dict[str, str], body: str, secrets: list[str], captured_url: str = ""
) -> str:
    """A request as the admin shows it (preview, test postback, delivery and attempt logs):
    request line, headers, then the body (JSON indented); credentials headers hidden and the
    partner's secret values masked."""
    lines = [f"{method} {mask(url, secrets)}"]
    if captured_url:
        lines.append(f"Captured: sent to {mask(captured_url, secrets)} instead (POSTBACK_CAPTURE_URL)")
    lines += [f"{name}: {value}" for name, value in masked_headers(headers, secrets).items()]
    return "\n".join(lines) + (f"\n\n{_pretty(mask(body, secrets))}" if body else "")


def _parts(request) -> dict:
    return {"method": request.method, "url": request.url, "headers": request.headers, "body": request.body}


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text


def _pre(text: str) -> str:
    return format_html('<pre style="white-space: pre-wrap; word-break: break-all; margin: 0">{}</pre>', text or "—")


class ResponseClassFilter(admin.SimpleListFilter):
    title = "response"
    parameter_name = "response"

    def lookups(self, request, model_admin):
        return [("2xx", "2xx"), ("3xx", "3xx"), ("4xx", "4xx"), ("5xx", "5xx"), ("none", "no response")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(attempts__gt=0, last_status_code__isnull=True)
        if value:
            low = int(value[0]) * 100
            return queryset.filter(last_status_code__gte=low, last_status_code__lt=low + 100)
        return queryset


class SlowFilter(admin.SimpleListFilter):
    title = "speed"
    parameter_name = "slow"

    def lookups(self, request, model_admin):
        return [("1", "an attempt took over 2 s")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(pk__in=Attempt.objects.filter(duration_ms__gt=2000).values("delivery_id"))
        return queryset


class EventNameFilter(admin.SimpleListFilter):
    """Event names of the user's own deliveries only (a plain field filter would list every account's)."""

    title = "event"
    parameter_name = "event_name"

    def lookups(self, request, model_admin):
        names = model_admin.get_queryset(request).order_by().values_list("event__name", flat=True).distinct()
        return [(name, name) for name in sorted(names)[:100]]

    def queryset(self, request, queryset):
        return queryset.filter(event__name=self.value()) if self.value() else queryset


class AttemptInline(ReadOnlyAdminMixin, admin.StackedInline):
    model = Attempt
    extra = 0
    fields = ["summary", "request_display", "response_display"]
    readonly_fields = fields
    ordering = ["-number"]

    @admin.display(description="attempt")
    def summary(self, attempt: Attempt) -> str:
        return format_html(
            "#{} at {} UTC · {} ms · <strong>{}</strong>{}",
            attempt.number,
            f"{attempt.started_at:%Y-%m-%d %H:%M:%S}",
            attempt.duration_ms,
            attempt.get_outcome_display(),
            f" · {attempt.error}" if attempt.error else "",
        )

    @admin.display(description="request")
    def request_display(self, attempt: Attempt) -> str:
        # Masked when it was recorded.
        parts = {"headers": attempt.request_headers, "body": attempt.request_body, "secrets": []}
        return _pre(request_text(method=attempt.method, url=attempt.url, captured_url=attempt.captured_url, **parts))

    @admin.display(description="response")
    def response_display(self, attempt: Attempt) -> str:
        if attempt.response_status is None:
            return _pre(attempt.error)
        headers = "\n".join(f"{name}: {value}" for name, value in attempt.response_headers.items())
        return _pre(f"HTTP {attempt.response_status}\n{headers}\n\n{_pretty(attempt.response_body)}")


class ResendFailedForm(forms.Form):
    configuration = forms.ModelChoiceField(queryset=PostbackConfiguration.objects.none(), required=False)
    partner = forms.ModelChoiceField(queryset=Partner.objects.none(), required=False)
    since = forms.DateTimeField(help_text="UTC, e.g. 2026-11-23 08:00")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        configurations = visible_to(PostbackConfiguration.objects.select_related("app"), user)
        self.fields["configuration"].queryset = configurations
        self.fields["partner"].queryset = Partner.objects.filter(
            configurations__postbacks__in=configurations
        ).distinct()

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("configuration")) == bool(cleaned.get("partner")):
            raise forms.ValidationError("Choose either a configuration or a partner.")
        return cleaned


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """The delivery log: read-only; support staff resend from here."""

    change_list_template = "admin/postbacks/delivery/change_list.html"

    def get_urls(self):
        resend = self.admin_site.admin_view(self.resend_failed_view)
        stats = self.admin_site.admin_view(self.stats_view)
        docs = self.admin_site.admin_view(self.docs_view)
        return [
            path("resend-failed/", resend, name="postbacks_delivery_resend_failed"),
            path("stats/", stats, name="postbacks_delivery_stats"),
            path("docs/", docs, name="postbacks_docs"),
            path("docs/<str:name>", docs, name="postbacks_docs_page"),
            *super().get_urls(),
        ]

    def stats_view(self, request):
        """Deliveries, success rate, response times, failures by cause and backlog, per partner or
        configuration, from the per-minute rollups (postbacks/statistics.py)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        visible_configurations = visible_to(PostbackConfiguration.objects.all(), request.user)
        configurations = visible_configurations
        partner_id, configuration_id = request.GET.get("partner"), request.GET.get("configuration")
        if configuration_id and configuration_id.isdigit():
            configurations = configurations.filter(pk=configuration_id)
        elif partner_id and partner_id.isdigit():
            configurations = configurations.filter(partner_configuration__partner_id=partner_id)
        window = request.GET.get("window", "24h")
        window = window if window in WINDOWS else "24h"
        stats = delivery_stats(configurations=configurations, since=clock.now() - WINDOWS[window], step=STEPS[window])
        context = {
            **self.admin_site.each_context(request),
            "title": "Delivery statistics",
            "opts": self.model._meta,
            "stats": stats,
            "charts": chart_specs(stats),
            "window": window,
            "windows": list(WINDOWS),
            "partners": Partner.objects.filter(configurations__postbacks__in=visible_configurations).distinct(),
            "partner_id": partner_id or "",
            "configuration_id": configuration_id or "",
        }
        return TemplateResponse(request, "admin/postbacks/delivery/stats.html", context)

    def docs_view(self, request, name: str = ""):
        """The project's documentation (README and docs/), for the dashboard's link."""
        pages = docs_pages()
        if name and name not in pages:
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "title": name or "Documentation",
            "pages": pages,
            "name": name,
            "text": pages[name].read_text() if name else "",
        }
        return TemplateResponse(request, "admin/postbacks/docs.html", context)

    def resend_failed_view(self, request):
        """Resend every failed delivery of a configuration or a partner since a time (after an outage)."""
        if not self.has_resend_permission(request):
            raise PermissionDenied
        form = ResendFailedForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            failed = self.get_queryset(request).filter(
                status=Delivery.Status.FAILED, created_at__gte=form.cleaned_data["since"]
            )
            if form.cleaned_data["configuration"]:
                failed = failed.filter(configuration=form.cleaned_data["configuration"])
            else:
                failed = failed.filter(configuration__partner_configuration__partner=form.cleaned_data["partner"])
            count = deliveries_resend(deliveries=failed)
            self.message_user(request, f"{count} failed deliver{'y' if count == 1 else 'ies'} scheduled again now.")
            return HttpResponseRedirect(reverse("admin:postbacks_delivery_changelist") + "?status=scheduled")
        context = {
            **self.admin_site.each_context(request),
            "title": "Resend failed deliveries",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/postbacks/delivery/resend_failed.html", context)

    list_display = [
        "short_id",
        "event_name",
        "target",
        "app",
        "status",
        "attempts",
        "last_status_code",
        "due_at",
        "created_at",
    ]
    list_filter = [
        "status",
        ResponseClassFilter,
        SlowFilter,
        EventNameFilter,
        ("configuration__partner_configuration__partner", admin.RelatedOnlyFieldListFilter),
        ("app", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["=delivery_id", "=event__event_id", "=device__identifiers__value"]
    list_select_related = ["event", "app", "configuration__partner_configuration__partner"]
    ordering = ["-pk"]
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = [
        "delivery_id",
        "status",
        "skip_reason",
        "withheld",
        "last_error",
        "configuration",
        "event",
        "device",
        "attempts",
        "max_attempts",
        "deferrals",
        "due_at",
        "created_at",
        "finished_at",
        "request_display",
    ]
    readonly_fields = fields

    def has_resend_permission(self, request):
        return request.user.has_perm("postbacks.resend_delivery")

    @admin.action(description="Resend the selected deliveries now", permissions=["resend"])
    def resend(self, request, queryset):
        count = deliveries_resend(deliveries=queryset)
        self.message_user(request, f"{count} deliver{'y' if count == 1 else 'ies'} scheduled to be sent again now.")

    @admin.display(description="delivery id", ordering="pk")
    def short_id(self, delivery: Delivery) -> str:
        return str(delivery.delivery_id)[:8]

    @admin.display(description="event", ordering="event__name")
    def event_name(self, delivery: Delivery) -> str:
        return delivery.event.name

    @admin.display(description="to")
    def target(self, delivery: Delivery) -> str:
        partner = delivery.configuration.partner
        return partner.name if partner else (delivery.configuration.title or "custom")

    @admin.display(description="request (secrets masked)")
    def request_display(self, delivery: Delivery) -> str:
        if not delivery.url:
            return "—"
        return _pre(request_text(**_parts(delivery), secrets=secret_values_of(delivery.configuration)))


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Erasure requests of the user's accounts' apps, as the API recorded them: never the ids in clear."""

    list_display = ["id", "app", "status", "requested_at", "completed_at", "counts"]
    list_filter = ["status", ("app", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["app"]
    fields = ["id", "app", "status", "id_hashes", "counts", "requested_at", "cutoff_at", "completed_at"]
