from __future__ import annotations

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from events.admin_scoping import EventNameFilter, ReadOnlyAdminMixin, ScopedModelAdmin, VisibleRelatedFilter
from events.models import App
from events.scoping import visible_to
from partners.admin import warn_if_illustrative
from partners.models import Partner
from postbacks import alerts, http
from postbacks.dashboard import chart_specs, docs_pages
from postbacks.forms import (
    FIELD_INPUT_PREFIX,
    PartnerConfigurationForm,
    PostbackConfigurationForm,
    chosen_object,
    delivery_method_applies,
    supply_network_data_applies,
)
from postbacks.models import (
    SLOW_ATTEMPT_MS,
    Alert,
    AlertRules,
    AlertState,
    Attempt,
    Delivery,
    Erasure,
    PartnerConfiguration,
    PostbackConfiguration,
)
from postbacks.rendering import RenderError, render_postback, requirement_problems, sample_values
from postbacks.selectors import deliveries_matching, deliveries_of_event_name, postback_duplicates, undelivered
from postbacks.sending import mask, masked_headers, secret_values_of, verdict_for
from postbacks.services import deliveries_resend, postback_send_test
from postbacks.statistics import STEPS, WINDOWS, delivery_stats
from project import clock
from project.dates import iso_utc

# The admin's index page is the dashboard (postbacks/dashboard.py): figures of the user's accounts.
admin.site.index_template = "admin/postbacks/dashboard_index.html"

OVERRIDE_FIELDS = ["endpoint_base", "fixed_parameters"]
LAST_ERROR_SHOWN = 60  # characters of a delivery's last error in the log's list (all of it on hover)
OVERRIDES_TITLE = "Overrides (optional)"
OVERRIDES_DESCRIPTION = (
    "What this measurement platform sends to the partner, changed without a code change: the endpoint base replaces "
    "the scheme and host of every template's URL and goes before its path; each fixed parameter is sent with every "
    "request, replacing the template's parameter of the same name. See docs/partner-templates.md."
)


def partner_hint(partner: Partner) -> str:
    """What the partner's fields are for, in words, above them."""
    where = f" Its documentation: {partner.website}" if partner.website else ""
    return f"The values {partner.name} gave you for this app; each field says where to find it.{where}"


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
                ("Postbacks on this configuration", {"fields": [self._postbacks_field(request)]}),
            ]
        form_class = self.get_form(request, obj)
        data = request.POST if request.method == "POST" else None
        form = form_class(data=data, instance=obj, initial=request.GET.dict())
        network_fields = [name for name in form.fields if name.startswith(FIELD_INPUT_PREFIX)]
        if network_fields:
            fieldsets.append(
                (
                    f"{form.partner.name}: network-specific fields",
                    {"fields": network_fields, "description": partner_hint(form.partner)},
                )
            )
        if form.partner is not None:
            fieldsets.append((OVERRIDES_TITLE, {"fields": OVERRIDE_FIELDS, "description": OVERRIDES_DESCRIPTION}))
        if obj is not None:
            fieldsets.append(("Postbacks on this configuration", {"fields": [self._postbacks_field(request)]}))
        return fieldsets

    def _postbacks_field(self, request) -> str:
        """The configuration's postbacks, with links to add the missing ones for who may add them."""
        may_add = request.user.has_perm("postbacks.add_postbackconfiguration")
        return "postbacks_overview" if may_add else "postbacks_list"

    class Media:
        js = ["postbacks/admin.js"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        warn_if_illustrative(request, obj.partner if obj is not None else context["adminform"].form.partner)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_readonly_fields(self, request, obj=None):
        # Moving a configuration to another app or partner would silently re-point its postbacks.
        if obj is None:
            return []
        return ["app", "partner", "field_values_display", "postbacks_overview", "postbacks_list"]

    def response_add(self, request, obj, post_url_continue=None):
        may_add = request.user.has_perm("postbacks.add_postbackconfiguration")
        links = self._add_postback_links(obj) if may_add else []
        if links:
            self.message_user(
                request,
                format_html("Next, add its postbacks: {}.", format_html_join(" · ", '<a href="{}">{}</a>', links)),
                messages.INFO,
            )
        return super().response_add(request, obj, post_url_continue)

    def _add_postback_links(self, config: PartnerConfiguration) -> list[tuple[str, str]]:
        """(prefilled add URL, text) for each event of the app the partner has a template for and
        this configuration has no postback for yet."""
        have = set(config.postbacks.values_list("event", flat=True))
        add_url = reverse("admin:postbacks_postbackconfiguration_add")
        links = []
        for event in config.app.event_names():
            if event in have or config.partner.template_for_event(event) is None:
                continue
            query = urlencode(
                {"app": config.app_id, "event": event, "kind": "certified", "partner_configuration": config.pk}
            )
            links.append((f"{add_url}?{query}", f"Add {event} postback"))
        return links

    @admin.display(description="postbacks")
    def postbacks_list(self, config: PartnerConfiguration) -> str:
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a> — {}{}</li>',
            (
                (
                    reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]),
                    str(postback),
                    postback.fires_on,
                    "" if postback.status == postback.Status.ACTIVE else " (inactive)",
                )
                for postback in config.postbacks.select_related("partner_configuration__partner").order_by(
                    "event", "pk"
                )
            ),
        )
        return format_html("<ul>{}</ul>", rows) if rows else mark_safe("<p>None yet.</p>")

    @admin.display(description="postbacks")
    def postbacks_overview(self, config: PartnerConfiguration) -> str:
        adds = format_html_join(" ", '<a class="addlink" href="{}">{}</a>', self._add_postback_links(config))
        return format_html("{}{}", self.postbacks_list(config), adds)

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


class PausedFilter(admin.SimpleListFilter):
    title = "alerts"
    parameter_name = "paused"

    def lookups(self, request, model_admin):
        return [("paused", "Paused"), ("alerting", "Alerting")]

    def queryset(self, request, queryset):
        if self.value() == "paused":
            return queryset.filter(alert_state__paused=True)
        if self.value() == "alerting":
            return queryset.filter(alert_state__alerting=True)
        return queryset


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
        "delivery_method_display",
        "updated_at",
        "alert_status",
    ]
    list_filter = [
        "status",
        PausedFilter,
        "kind",
        "event",
        "delivery_method",
        "partner_configuration__partner",
        ("app", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["title", "event", "destination_url", "app__name", "partner_configuration__partner__name"]
    list_select_related = ["app", "partner_configuration__partner", "alert_state"]
    actions = ["pause", "resume", "discard_held"]

    def changelist_view(self, request, extra_context=None):
        paused = self.get_queryset(request).filter(alert_state__paused=True)
        if request.method == "GET" and paused.exists():
            names = ", ".join(str(configuration) for configuration in paused[:5])
            count = paused.count()
            more = f" and {count - 5} more" if count > 5 else ""
            self.message_user(
                request,
                format_html(
                    "<strong>Paused: {}{}.</strong> Their new deliveries are held, not sent. "
                    '<a href="?paused=paused">Show the paused configurations</a>, then Resume (sends the held '
                    'deliveries, oldest first) or Discard held. <a href="{}">What is waiting, and why</a>.',
                    names,
                    more,
                    reverse("admin:postbacks_delivery_undelivered"),
                ),
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        state = AlertState.objects.filter(configuration_id=object_id if str(object_id).isdigit() else None).first()
        if request.method == "GET" and state is not None and state.paused and self.get_object(request, object_id):
            self.message_user(
                request,
                f"Paused since {state.paused_at:%Y-%m-%d %H:%M} UTC ({state.pause_reason}): its deliveries are held. "
                "Resume or Discard held from the list of postback configurations.",
                messages.WARNING,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="alerts")
    def alert_status(self, postback: PostbackConfiguration) -> str:
        state = getattr(postback, "alert_state", None)
        if state is None:
            return "—"
        if state.paused:
            return format_html(
                '<strong style="color: #fff; background: #ba2121; padding: 2px 6px">PAUSED</strong> {}',
                state.pause_reason,
            )
        if state.alerting:
            return format_html('<strong style="color: #ba2121">Alerting</strong>: {}', state.alert_reason)
        return "OK"

    @admin.action(description="Pause the selected configurations (hold their deliveries)", permissions=["change"])
    def pause(self, request, queryset):
        by = request.user.get_username()
        count = sum(
            alerts.configuration_pause(configuration=configuration, reason=f"Paused by {by}")
            for configuration in queryset
        )
        self.message_user(request, f"{count} configuration{'s' if count != 1 else ''} paused.")

    @admin.action(description="Resume the selected configurations (send the held deliveries)", permissions=["change"])
    def resume(self, request, queryset):
        held = sum(alerts.configuration_resume(configuration=configuration) for configuration in queryset)
        self.message_user(
            request, f"Resumed: {held} held deliver{'y' if held == 1 else 'ies'} will be sent, oldest first."
        )

    @admin.action(
        description="Discard the held deliveries of the selected paused configurations", permissions=["change"]
    )
    def discard_held(self, request, queryset):
        by = request.user.get_username()
        count = sum(alerts.held_discard(configuration=configuration, by=by) for configuration in queryset)
        self.message_user(
            request,
            f"{count} held deliver{'y' if count == 1 else 'ies'} discarded (skipped, unsent); the pause goes on.",
        )

    def get_fieldsets(self, request, obj=None):
        """Only the part of the chosen kind (the instance's, else the one posted or asked for
        with ?kind=); both while none is chosen, for the form's script to show one live. The
        delivery method and supply network data only where they apply to the chosen partner."""
        kind = self.chosen_kind(request, obj)
        partner = self.chosen_partner(request, obj, kind)
        if obj is not None and not self.has_change_permission(request, obj):
            secret_fields = ["signing_secret_display"]  # read-only: masked, as partner secrets are
        elif obj is not None and obj.signing_secret:
            secret_fields = ["signing_secret", "remove_signing_secret"]
        else:
            secret_fields = ["signing_secret"]
        main = ["app", "event", "kind", "status", "title", "match_event"]
        fieldsets = [
            (None, {"fields": main, "description": "" if kind else "Choose the kind first: its settings follow."})
        ]
        if obj is not None:
            fieldsets.append(("Preview: the request a sample event would produce", {"fields": ["request_preview"]}))
        if kind in (None, PostbackConfiguration.Kind.CERTIFIED):
            certified = ["partner_configuration", "partner_event_name"]
            if delivery_method_applies(kind=kind, partner=partner):
                certified.append("delivery_method")
            fieldsets.append(
                (
                    "Certified postback (endpoint and parameters from the partner's managed template)",
                    {"fields": certified, "classes": ["postback-kind", "postback-kind-certified"]},
                )
            )
        if kind in (None, PostbackConfiguration.Kind.CUSTOM):
            fieldsets.append(
                (
                    "Custom postback (your own endpoint)",
                    {
                        "fields": ["destination_url", "method", "macros", *secret_fields],
                        "classes": ["postback-kind", "postback-kind-custom"],
                    },
                )
            )
        delivery = ["delay_seconds", "retry_attempts"]
        if supply_network_data_applies(kind=kind, partner=partner):
            delivery.insert(0, "supply_network_data")
        fieldsets += [
            ("Conditions (all must hold for the postback to fire)", {"fields": ["conditions"]}),
            ("Delivery", {"fields": delivery}),
        ]
        return fieldsets

    class Media:
        css = {"all": ["postbacks/admin.css"]}
        js = ["postbacks/admin.js"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        duplicates = list(postback_duplicates(configuration=obj)[:3])
        if duplicates:
            links = format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:postbacks_postbackconfiguration_change", args=[other.pk]), str(other))
                    for other in duplicates
                ),
            )
            self.message_user(
                request,
                format_html("Saved, but it is identical to {}: each event would be sent twice.", links),
                messages.WARNING,
            )

    @admin.display(description="delivery method", ordering="delivery_method")
    def delivery_method_display(self, postback: PostbackConfiguration) -> str:
        partner = postback.partner
        if not delivery_method_applies(kind=postback.kind, partner=partner) or partner is None:
            return "—"
        return postback.get_delivery_method_display()

    def chosen_kind(self, request, obj) -> str | None:
        """The kind posted, else asked for (?kind=, also how the script switches a saved one), else the instance's."""
        kinds = PostbackConfiguration.Kind.values
        for value in (request.POST.get("kind"), request.GET.get("kind"), obj.kind if obj is not None else None):
            if value in kinds:
                return value
        return None

    def chosen_partner(self, request, obj, kind: str | None) -> Partner | None:
        if kind != PostbackConfiguration.Kind.CERTIFIED:
            return None
        raw = request.POST.get("partner_configuration") or request.GET.get("partner_configuration")
        if raw is None and obj is not None:
            return obj.partner
        if not raw or not str(raw).isdigit():
            return None
        configurations = visible_to(PartnerConfiguration.objects.select_related("partner"), request.user)
        chosen = configurations.filter(pk=raw).first()
        return chosen.partner if chosen is not None else None

    def get_readonly_fields(self, request, obj=None):
        return ["app", "request_preview", "signing_secret_display"] if obj is not None else []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        if obj is not None and not form.is_bound and "kind" in form.fields:
            # ?kind= switches a saved postback's form: its kind select says so too.
            form.initial["kind"] = self.chosen_kind(request, obj)
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
        return [("1", f"an attempt took over {SLOW_ATTEMPT_MS // 1000} s")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(pk__in=Attempt.objects.filter(duration_ms__gt=SLOW_ATTEMPT_MS).values("delivery_id"))
        return queryset


class DeliveryEventNameFilter(EventNameFilter):
    def queryset(self, request, queryset):
        return deliveries_of_event_name(deliveries=queryset, name=self.value()) if self.value() else queryset


class PartnerFilter(VisibleRelatedFilter):
    """The partners of the user's configurations (a plain filter would list every account's)."""

    def choices_queryset(self, rows, request):
        configurations = visible_to(PostbackConfiguration.objects.all(), request.user)
        return rows.filter(configurations__postbacks__in=configurations).distinct()


class AttemptInline(ReadOnlyAdminMixin, admin.StackedInline):
    model = Attempt
    extra = 0
    fields = ["summary", "request_display", "response_display"]
    readonly_fields = fields
    ordering = ["-number"]
    # Headed "Attempt n of m", m the delivery's maximum now (a resend raises it).
    template = "admin/postbacks/delivery/attempts_inline.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("delivery")

    @admin.display(description="attempt")
    def summary(self, attempt: Attempt) -> str:
        return format_html(
            "Attempt {} of {} at {} · {} ms · <strong>{}</strong>{}",
            attempt.number,
            attempt.delivery.max_attempts,
            iso_utc(attempt.started_at),
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
    since = forms.DateTimeField(help_text="ISO 8601, UTC, e.g. 2026-11-23T08:00:00Z (or 2026-11-23 08:00)")

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

    change_form_template = "admin/postbacks/delivery/change_form.html"

    class Media:
        css = {"all": ["postbacks/admin.css"]}

    def get_urls(self):
        resend = self.admin_site.admin_view(self.resend_failed_view)
        stats = self.admin_site.admin_view(self.stats_view)
        waiting = self.admin_site.admin_view(self.undelivered_view)
        resend_one = self.admin_site.admin_view(self.resend_one_view)
        docs = self.admin_site.admin_view(self.docs_view)
        return [
            path("undelivered/", waiting, name="postbacks_delivery_undelivered"),
            path("<int:object_id>/resend/", resend_one, name="postbacks_delivery_resend"),
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

    def undelivered_view(self, request):
        """Every delivery not finished now, next due first, with why it waits."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows, total = undelivered(deliveries=self.get_queryset(request))
        context = {
            **self.admin_site.each_context(request),
            "title": "Undelivered now",
            "opts": self.model._meta,
            "rows": rows,
            "total": total,
        }
        return TemplateResponse(request, "admin/postbacks/delivery/undelivered.html", context)

    def resend_one_view(self, request, object_id: int):
        """The delivery page's Resend button: this delivery, sent again now."""
        delivery = self.get_object(request, str(object_id))
        if delivery is None:
            raise Http404
        if request.method != "POST" or not self.has_resend_permission(request):
            raise PermissionDenied
        if deliveries_resend(deliveries=[delivery]):
            self.message_user(request, "Scheduled to be sent again now, with the same delivery id.")
        else:
            self.message_user(request, "Not resent: a skipped delivery has no request to send.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:postbacks_delivery_change", args=[delivery.pk]))

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
        "event_shown",
        "target",
        "app",
        "status_display",
        "attempts",
        "last_status_code",
        "last_error_display",
        "due_at",
        "created_at",
    ]
    list_filter = [
        "status",
        ResponseClassFilter,
        SlowFilter,
        DeliveryEventNameFilter,
        ("configuration__partner_configuration__partner", PartnerFilter),
        ("app", VisibleRelatedFilter),
    ]
    search_fields = ["delivery_id"]  # shows the search box; get_search_results does the search
    search_help_text = "A delivery id or the short id shown, an event id, a device id, or a destination host."
    list_select_related = ["app", "configuration__partner_configuration__partner"]
    ordering = ["-pk"]
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = [
        "delivery_id",
        "status_display",
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

    def get_search_results(self, request, queryset, search_term):
        apps = visible_to(App.objects.all(), request.user)
        return deliveries_matching(deliveries=queryset, apps=apps, term=search_term), False

    @admin.display(description="status", ordering="status")
    def status_display(self, delivery: Delivery) -> str:
        return format_html(
            '<span class="delivery-status delivery-status-{}">{}</span>', delivery.status, delivery.get_status_display()
        )

    @admin.display(description="last error")
    def last_error_display(self, delivery: Delivery) -> str:
        text = delivery.last_error or delivery.skip_reason
        if len(text) <= LAST_ERROR_SHOWN:
            return text or "—"
        return format_html('<span title="{}">{}…</span>', text, text[: LAST_ERROR_SHOWN - 1])

    def has_resend_permission(self, request):
        return request.user.has_perm("postbacks.resend_delivery")

    @admin.action(description="Resend the selected deliveries now", permissions=["resend"])
    def resend(self, request, queryset):
        count = deliveries_resend(deliveries=queryset)
        self.message_user(request, f"{count} deliver{'y' if count == 1 else 'ies'} scheduled to be sent again now.")

    @admin.display(description="delivery id", ordering="pk")
    def short_id(self, delivery: Delivery) -> str:
        return str(delivery.delivery_id)[:8]

    @admin.display(description="event", ordering="event_name")
    def event_shown(self, delivery: Delivery) -> str:
        # Deliveries made before migration postbacks 0015 do not store it: read from the event.
        return delivery.event_name if delivery.event_name is not None else delivery.event.name

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


@admin.register(AlertRules)
class AlertRulesAdmin(ScopedModelAdmin):
    list_display = ["__str__", "consecutive_failures", "failure_rate_percent", "window_minutes", "pause_on_alert"]
    list_select_related = ["account", "configuration"]
    fieldsets = [
        (None, {"fields": ["account", "configuration"]}),
        (
            "When to alert",
            {"fields": ["consecutive_failures", "failure_rate_percent", "window_minutes", "window_min_attempts"]},
        ),
        ("What then", {"fields": ["pause_on_alert", "email_to", "webhook_url"]}),
    ]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Alerts raised and cleared, with what each channel answered."""

    list_display = ["created_at", "kind", "configuration", "reason", "paused", "notified_at", "notification"]
    list_filter = ["kind", "paused"]
    list_select_related = ["configuration__app", "configuration__partner_configuration__partner"]
    ordering = ["-pk"]
