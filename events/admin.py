from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from events.admin_scoping import (
    EventNameFilter,
    ReadOnlyAdminMixin,
    ScopedModelAdmin,
    ScopedTabularInline,
    VisibleRelatedFilter,
)
from events.models import Account, App, Click, CustomEvent, Device, DeviceIdentifier, Event, Tracker
from events.scoping import visible_to
from events.selectors import clicks_matching_term, devices_matching, events_matching
from events.services import app_issue_api_key
from project.dates import iso_utc


@admin.register(Account)
class AccountAdmin(ScopedModelAdmin):
    list_display = ["name", "app_count", "member_count", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["members"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_apps=Count("apps", distinct=True), _members=Count("members", distinct=True))
        )

    @admin.display(description="apps", ordering="_apps")
    def app_count(self, account: Account) -> int:
        return account._apps

    @admin.display(description="members", ordering="_members")
    def member_count(self, account: Account) -> int:
        return account._members


class CustomEventInline(ScopedTabularInline):
    model = CustomEvent
    extra = 0
    fields = ["name", "description"]
    verbose_name = "custom (post-install) event"
    verbose_name_plural = "Custom (post-install) events: declare them before a postback can use them"


@admin.register(App)
class AppAdmin(ScopedModelAdmin):
    list_display = ["name", "account", "platform", "package_name", "is_active", "api_key_prefix", "created_at"]
    list_filter = ["platform", "is_active", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "package_name", "api_key_prefix"]
    list_select_related = ["account"]
    inlines = [CustomEventInline]
    actions = ["rotate_api_key"]

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["account", "name", "platform", "package_name", "lookback_days", "is_active"]})
        if obj is None:
            return [main]
        return [
            main,
            ("API key", {"fields": ["api_key_display"]}),
            ("Partner configurations", {"fields": ["partner_configurations_overview"]}),
            ("Postbacks by event", {"fields": ["postbacks_overview"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["api_key_display", "partner_configurations_overview", "postbacks_overview"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key = app_issue_api_key(app=obj)
        self.message_user(
            request,
            format_html(
                "API key for {}: <code>{}</code> — copy it now: it is stored hashed and will not be shown again.",
                obj.name,
                key,
            ),
            messages.WARNING,
        )

    @admin.action(description="Rotate the API key of the selected apps (the old keys stop working)")
    def rotate_api_key(self, request, queryset):
        if not self.has_change_permission(request):
            self.message_user(request, "You may not change apps.", messages.ERROR)
            return
        for app in queryset:
            key = app_issue_api_key(app=app)
            self.log_change(request, app, [{"changed": {"fields": ["API key (rotated)"]}}])
            self.message_user(
                request,
                format_html("New API key for {}: <code>{}</code> — shown once, copy it now.", app.name, key),
                messages.WARNING,
            )

    @admin.display(description="API key")
    def api_key_display(self, app: App) -> str:
        rotated = f", rotated {iso_utc(app.api_key_rotated_at)}" if app.api_key_rotated_at else ""
        return format_html(
            "<code>{}…</code> (only the start is kept{}). "
            "Use the list's “Rotate the API key” action to issue a new one.",
            app.api_key_prefix,
            rotated,
        )

    @admin.display(description="Configured partners")
    def partner_configurations_overview(self, app: App) -> str:
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a></li>',
            (
                (reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk]), config.partner.name)
                for config in app.partner_configurations.select_related("partner")
            ),
        )
        add_url = reverse("admin:postbacks_partnerconfiguration_add") + f"?app={app.pk}"
        return format_html('<ul>{}</ul><a class="addlink" href="{}">Add a configuration</a>', rows, add_url)

    @admin.display(description="Install, SessionBegin and post-install events")
    def postbacks_overview(self, app: App) -> str:
        postbacks_by_event: dict[str, list] = {}
        for postback in app.postback_configurations.select_related("partner_configuration__partner"):
            postbacks_by_event.setdefault(postback.event, []).append(postback)
        add_url = reverse("admin:postbacks_postbackconfiguration_add")
        rows = []
        for event in app.event_names():
            links = format_html_join(
                ", ",
                '<a href="{}">{}</a>{}',
                (
                    (
                        reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]),
                        str(postback),
                        "" if postback.status == postback.Status.ACTIVE else " (inactive)",
                    )
                    for postback in postbacks_by_event.get(event, [])
                ),
            )
            add_links = {
                kind: f"{add_url}?{urlencode({'app': app.pk, 'event': event, 'kind': kind})}"
                for kind in ("certified", "custom")
            }
            rows.append(
                format_html(
                    '<tr><td><strong>{}</strong></td><td>{}</td><td><a class="addlink" href="{}">certified</a> '
                    '<a class="addlink" href="{}">custom</a></td></tr>',
                    event,
                    links or "—",
                    add_links["certified"],
                    add_links["custom"],
                )
            )
        return format_html(
            "<table><thead><tr><th>Event</th><th>Postbacks</th><th>Add postback</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "{}", ((row,) for row in rows)),
        )


@admin.register(Tracker)
class TrackerAdmin(ScopedModelAdmin):
    list_display = ["id", "app", "network", "agency", "kind", "campaign_name", "campaign_id", "site_id"]
    list_filter = ["kind", "network", ("app", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["id", "campaign_id", "campaign_name", "site_id", "creative_id"]
    list_select_related = ["app", "network", "agency"]
    fields = [
        "id",
        "app",
        "network",
        "agency",
        "kind",
        "campaign_id",
        "campaign_name",
        "site_id",
        "creative_id",
        "destination_url",
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["id"] if obj is not None else []


class DeviceIdentifierInline(ReadOnlyAdminMixin, ScopedTabularInline):
    model = DeviceIdentifier
    fields = ["kind", "value"]
    extra = 0


class InstallsFilter(admin.SimpleListFilter):
    """Fixed choices: Django's own filter on install_count reads them by a DISTINCT over every device."""

    title = "installs"
    parameter_name = "installs"

    def lookups(self, request, model_admin):
        return [("0", "none yet"), ("1", "one"), ("2+", "reinstalled")]

    def queryset(self, request, queryset):
        if self.value() == "2+":
            return queryset.filter(install_count__gte=2)
        if self.value() in ("0", "1"):
            return queryset.filter(install_count=int(self.value()))
        return queryset


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = [
        "__str__",
        "app",
        "installed_at",
        "network",
        "agency",
        "campaign_name",
        "reengaged_at",
    ]
    list_filter = [("app", VisibleRelatedFilter), "network", InstallsFilter]
    search_fields = ["pk"]  # shows the search box; get_search_results does the search
    search_help_text = "A device identifier, or the device's number."
    list_select_related = ["app", "network", "agency"]
    inlines = [DeviceIdentifierInline]
    ordering = ["-pk"]

    def get_search_results(self, request, queryset, search_term):
        apps = visible_to(App.objects.all(), request.user)
        return devices_matching(devices=queryset, apps=apps, term=search_term), False

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "app",
                    "installed_at",
                    "install_count",
                    "install_tracker",
                    "install_click",
                    "network",
                    "agency",
                    "campaign_id",
                    "campaign_name",
                    "reengaged_at",
                    "reengagement_tracker",
                    "reengagement_click",
                    "reengagement_network",
                    "reengagement_agency",
                    "created_at",
                ]
            },
        ),
        (
            "Tracking and consent (the latest reported; postbacks use these when an event reports none)",
            {
                "fields": [
                    "att_status",
                    "limit_ad_tracking",
                    "consent_ad_user_data",
                    "consent_ad_personalization",
                    "tracking_reported_at",
                ]
            },
        ),
    ]


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["event_id", "name", "app", "device", "occurred_at", "received_at", "revenue", "currency"]
    list_filter = [("app", VisibleRelatedFilter), EventNameFilter, "is_reinstall", "is_reengagement"]
    search_fields = ["event_id"]  # shows the search box; get_search_results does the search
    search_help_text = "An event id, or an identifier of its device."
    list_select_related = ["app", "device__app"]
    ordering = ["-pk"]
    fields = [
        "event_id",
        "name",
        "app",
        "device",
        "device_ids",
        "occurred_at",
        "received_at",
        "ip",
        "user_agent",
        "os_version",
        "app_version",
        "country",
        "revenue",
        "currency",
        "value",
        "properties",
        "att_status",
        "limit_ad_tracking",
        "consent_ad_user_data",
        "consent_ad_personalization",
        "device_model",
        "language",
        "is_reinstall",
        "is_reengagement",
        "postbacks_scheduled",
        "postbacks_overview",
    ]
    readonly_fields = ["postbacks_overview"]

    def get_search_results(self, request, queryset, search_term):
        apps = visible_to(App.objects.all(), request.user)
        return events_matching(events=queryset, apps=apps, term=search_term), False

    @admin.display(description="Postbacks: what happened, and why")
    def postbacks_overview(self, event: Event) -> str:
        """Every postback configuration of the app: the answer to "why did my postback not fire?"."""
        deliveries = {delivery.configuration_id: delivery for delivery in event.deliveries.all()}
        rows = []
        for configuration in event.app.postback_configurations.select_related("partner_configuration__partner"):
            delivery = deliveries.get(configuration.pk)
            if delivery is None:
                outcome, link = "not produced", ""
                why = f"Fires on {configuration.fires_on}, not on {event.name}."
            else:
                outcome = delivery.get_status_display()
                link = reverse("admin:postbacks_delivery_change", args=[delivery.pk])
                why = delivery.skip_reason or delivery.last_error or f"{delivery.attempts} attempt(s) so far."
                if delivery.withheld:
                    why = f"{why} {delivery.withheld}"
            rows.append(
                format_html(
                    '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
                    reverse("admin:postbacks_postbackconfiguration_change", args=[configuration.pk]),
                    str(configuration),
                    format_html('<a href="{}">{}</a>', link, outcome) if link else outcome,
                    why,
                )
            )
        if not rows:
            return "The app has no postback configurations."
        return format_html(
            "<table><thead><tr><th>Configuration</th><th>Outcome</th><th>Why</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "{}", ((row,) for row in rows)),
        )


@admin.register(Click)
class ClickAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ["pk", "tracker", "app", "clicked_at", "click_id", "adid", "idfa", "ip"]
    list_filter = [("app", VisibleRelatedFilter), "tracker__network"]
    search_fields = ["adid"]  # shows the search box; get_search_results does the search
    search_help_text = "A device identifier the click carried."
    list_select_related = ["tracker__network", "app"]
    ordering = ["-pk"]

    def get_search_results(self, request, queryset, search_term):
        apps = visible_to(App.objects.all(), request.user)
        return clicks_matching_term(clicks=queryset, apps=apps, term=search_term), False
