"""Accounts, apps, their declared events and trackers."""

from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from partners.models import Partner

BUILTIN_EVENTS = ("install", "session_begin")
API_KEY_PREFIX = "pbk_"

# Android: dot-separated segments of letters, digits and underscores, each starting with a letter.
ANDROID_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
# iOS: letters, digits, hyphens and dots (Apple's CFBundleIdentifier rule).
IOS_BUNDLE_ID = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough to keep a database leak useless.
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class AccountScoped(models.Model):
    """A model whose rows belong to one account; `account_path` leads from the row to it."""

    account_path: str = ""

    class Meta:
        abstract = True


class Account(AccountScoped):
    account_path = ""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="postback_accounts",
        blank=True,
        help_text="Staff users who see and manage this account's apps.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class App(AccountScoped):
    account_path = "account"

    class Platform(models.TextChoices):
        ANDROID = "android", "Android"
        IOS = "ios", "iOS"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="apps")
    name = models.CharField(max_length=100)
    platform = models.CharField(max_length=8, choices=Platform.choices)
    package_name = models.CharField(
        "package name / bundle ID",
        max_length=255,
        help_text="Android: the package name from the Play Store URL (id=com.example.game). iOS: the bundle ID.",
    )
    api_key_prefix = models.CharField(max_length=12, editable=False, blank=True)
    api_key_hash = models.CharField(max_length=64, unique=True, editable=False)
    api_key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    lookback_days = models.PositiveSmallIntegerField(
        "attribution lookback window (days)",
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="app_unique_name_per_account"),
            models.UniqueConstraint(
                fields=["account", "platform", "package_name"], name="app_unique_package_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_platform_display()})"

    def clean(self) -> None:
        package = (self.package_name or "").strip()
        self.package_name = package
        if self.platform == self.Platform.ANDROID and package and not ANDROID_PACKAGE.match(package):
            hint = " It looks like an iOS bundle ID; check the platform." if IOS_BUNDLE_ID.match(package) else ""
            raise ValidationError(
                {
                    "package_name": f"{package!r} is not an Android package name: dot-separated segments of "
                    f"letters, digits and underscores, each starting with a letter (e.g. com.example.game).{hint}"
                }
            )
        if self.platform == self.Platform.IOS and package and not IOS_BUNDLE_ID.match(package):
            raise ValidationError(
                {
                    "package_name": f"{package!r} is not an iOS bundle ID: dot-separated letters, digits and "
                    "hyphens (e.g. com.example.game). The numeric App Store ID is not the bundle ID."
                }
            )

    def set_api_key(self, key: str) -> None:
        self.api_key_hash = hash_api_key(key)
        self.api_key_prefix = key[:12]

    def event_names(self) -> list[str]:
        return [*BUILTIN_EVENTS, *self.custom_events.values_list("name", flat=True)]


class CustomEvent(AccountScoped):
    """A post-install event the app declares before postbacks may use it."""

    account_path = "app__account"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="custom_events")
    name = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                "Start with a letter or digit; then letters, digits, and _ . : - only.",
            )
        ],
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["app", "name"]
        constraints = [models.UniqueConstraint(fields=["app", "name"], name="custom_event_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.name in BUILTIN_EVENTS:
            raise ValidationError({"name": f"{self.name} is a built-in event; every app has it already."})


def new_tracker_id() -> str:
    return "trk_" + secrets.token_hex(5)


class Tracker(AccountScoped):
    account_path = "app__account"

    class Kind(models.TextChoices):
        ACQUISITION = "acquisition", "Acquisition"
        REENGAGEMENT = "reengagement", "Reengagement"

    id = models.CharField(
        primary_key=True,
        max_length=40,
        default=new_tracker_id,
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$", "Letters, digits, _ and - only.")],
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="trackers")
    network = models.ForeignKey(
        Partner, on_delete=models.PROTECT, related_name="trackers", limit_choices_to={"kind": Partner.Kind.NETWORK}
    )
    agency = models.ForeignKey(
        Partner,
        on_delete=models.PROTECT,
        related_name="agency_trackers",
        null=True,
        blank=True,
        limit_choices_to={"kind": Partner.Kind.AGENCY},
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ACQUISITION)
    campaign_id = models.CharField(max_length=100, blank=True)
    campaign_name = models.CharField(max_length=200, blank=True)
    site_id = models.CharField(max_length=100, blank=True)
    creative_id = models.CharField(max_length=100, blank=True)
    destination_url = models.URLField(
        "destination (store) URL", max_length=2000, help_text="Where a click is redirected, e.g. the store page."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["app", "network", "campaign_name"]

    def __str__(self) -> str:
        label = self.campaign_name or self.campaign_id or self.id
        return f"{self.network} · {label} ({self.get_kind_display()})"

    def clean(self) -> None:
        errors = {}
        if self.network_id and self.network.kind != Partner.Kind.NETWORK:
            errors["network"] = f"{self.network} is not a media network."
        if self.agency_id and self.agency.kind != Partner.Kind.AGENCY:
            errors["agency"] = f"{self.agency} is not an agency."
        if self.destination_url and not self.destination_url.startswith(("https://", "http://")):
            errors["destination_url"] = "The destination must start with https:// or http://."
        if errors:
            raise ValidationError(errors)


DEVICE_ID_KINDS = ("adid", "idfa", "idfv", "android_id", "device_id")
# iOS App Tracking Transparency (ATTrackingManager.AuthorizationStatus), as the API takes it.
ATT_STATUSES = ("authorized", "denied", "restricted", "not_determined")
# What an event may report about tracking and consent; the device keeps the latest of each.
TRACKING_FIELDS = ("att_status", "limit_ad_tracking", "consent_ad_user_data", "consent_ad_personalization")


def att_status_field() -> models.CharField:
    return models.CharField(
        "App Tracking Transparency status",
        max_length=16,
        blank=True,
        choices=[(status, status) for status in ATT_STATUSES],
        help_text="iOS: empty when not reported.",
    )


def tracking_flag(verbose_name: str) -> models.BooleanField:
    """Yes, no, or unknown (not reported)."""
    return models.BooleanField(verbose_name, null=True, blank=True)


# Device columns pointing at what attributed it: empty for organic devices.
ATTRIBUTION_LINKS = (
    "install_tracker",
    "install_click",
    "network",
    "agency",
    "reengagement_tracker",
    "reengagement_click",
    "reengagement_network",
    "reengagement_agency",
)


def attribution_link(to, *, related_name: str = "+", db_constraint: bool = True) -> models.ForeignKey:
    """A device's pointer at what attributed it: emptied when that is deleted, and indexed by
    Device.Meta's partial index rather than a full one."""
    return models.ForeignKey(
        to,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name=related_name,
        db_index=False,
        db_constraint=db_constraint,
    )


class Device(AccountScoped):
    """One device of one app, however many identifiers its events carry."""

    account_path = "app__account"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="devices")
    installed_at = models.DateTimeField(null=True, blank=True)
    install_count = models.PositiveIntegerField(default=0, help_text="1 for the first install; more are reinstalls.")
    # Attribution of the first install: a snapshot, so later tracker edits do not rewrite history.
    install_tracker = attribution_link(Tracker, related_name="attributed_devices")
    # Clicks are partitioned by day on PostgreSQL (docs/retention.md#partitions), which a
    # foreign key would keep from being dropped: retention empties these links itself first.
    install_click = attribution_link("Click", db_constraint=False)
    network = attribution_link(Partner)
    agency = attribution_link(Partner)
    campaign_id = models.CharField(max_length=100, blank=True)
    campaign_name = models.CharField(max_length=200, blank=True)
    # The latest reengagement: with the install, the anchor of SessionBegin's 24-hour periods.
    reengaged_at = models.DateTimeField(null=True, blank=True)
    reengagement_tracker = attribution_link(Tracker, related_name="reengaged_devices")
    reengagement_click = attribution_link("Click", db_constraint=False)
    reengagement_network = attribution_link(Partner)
    reengagement_agency = attribution_link(Partner)
    # Tracking and consent: the latest reported (by event time), each kept until reported again.
    att_status = att_status_field()
    limit_ad_tracking = tracking_flag("limits ad tracking")
    consent_ad_user_data = tracking_flag("consents to ad user data (EEA)")
    consent_ad_personalization = tracking_flag("consents to ad personalization (EEA)")
    tracking_reported_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the latest event that reported tracking or consent."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        # Most devices are organic: their attribution columns stay empty, and indexing only
        # the filled ones keeps a new device's insert to two index entries, while deleting
        # a tracker, click or partner still finds its devices by index.
        indexes = [
            models.Index(
                fields=[name],
                condition=models.Q(**{f"{name}__isnull": False}),
                name=f"device_{name.replace('reengagement', 'reeng')}_idx",
            )
            for name in ATTRIBUTION_LINKS
        ]

    def __str__(self) -> str:
        return f"Device {self.pk} of {self.app.name}" if self.app_id else f"Device {self.pk}"

    @property
    def is_attributed(self) -> bool:
        return self.network_id is not None

    @property
    def session_anchor(self):
        """Start of SessionBegin's 24-hour periods: the latest reengagement, else the install."""
        return self.reengaged_at or self.installed_at


class DeviceIdentifier(AccountScoped):
    account_path = "app__account"

    # Looked up by device_identifier_unique (app, kind, value): no index of its own.
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=16, choices=[(kind, kind) for kind in DEVICE_ID_KINDS])
    value = models.CharField(max_length=128)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "kind", "value"], name="device_identifier_unique")]

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class Click(AccountScoped):
    """A click (or impression-free visit) on a tracker link, kept for attribution."""

    account_path = "app__account"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="clicks")
    # Indexed by click_tracker_idx: Django's own index of a text key adds a second one for
    # LIKE, which nothing asks of a tracker id.
    tracker = models.ForeignKey(Tracker, on_delete=models.CASCADE, related_name="clicks", db_index=False)
    clicked_at = models.DateTimeField(db_index=True)
    click_id = models.CharField(max_length=200, blank=True)
    adid = models.CharField(max_length=128, blank=True)
    idfa = models.CharField(max_length=128, blank=True)
    idfv = models.CharField(max_length=128, blank=True)
    android_id = models.CharField(max_length=128, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    parameters = models.JSONField(default=dict, blank=True, help_text="Sub-parameters from the click URL.")

    class Meta:
        ordering = ["-clicked_at"]
        # A click carries one or two of the five ids, the others empty: each index holds only
        # the clicks that carry its id, so none is mostly '' and a lookup of an id never walks
        # the clicks without one (queries.clicks_matching states `<> ''` to use them).
        indexes = [
            models.Index(
                fields=["app", kind, "clicked_at"], condition=~models.Q(**{kind: ""}), name=f"click_{kind}_idx"
            )
            for kind in DEVICE_ID_KINDS
        ] + [models.Index(fields=["tracker"], name="click_tracker_idx")]

    def __str__(self) -> str:
        return f"Click {self.pk} on {self.tracker_id}"


class Event(AccountScoped):
    """One event a client app reported, stored once per (app, event_id)."""

    account_path = "app__account"

    # Both looked up by the multi-column indexes in Meta that lead with them.
    # No database constraint on app: checking it made every insert lock the app's one row
    # (FOR KEY SHARE), so an app's concurrent inserts queued on it. The event's device is
    # still a constraint, and the device's app one, so an event cannot outlive its app;
    # deleting an app still deletes its events (Django's CASCADE).
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False)
    event_id = models.CharField(max_length=128)
    name = models.CharField(max_length=64)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events", db_index=False)
    device_ids = models.JSONField(default=dict, help_text="The identifiers as this event carried them.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    os_version = models.CharField(max_length=32, blank=True)
    app_version = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True)
    revenue = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    value = models.CharField(max_length=1024, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # Tracking and consent as this event reported them (empty: not reported; see the device's).
    att_status = att_status_field()
    limit_ad_tracking = tracking_flag("limits ad tracking")
    consent_ad_user_data = tracking_flag("consents to ad user data (EEA)")
    consent_ad_personalization = tracking_flag("consents to ad personalization (EEA)")
    # The device as the event reports it (empty: not reported).
    device_model = models.CharField(max_length=64, blank=True, help_text="As the OS reports it, e.g. iPhone15,2.")
    language = models.CharField(max_length=35, blank=True, help_text="BCP 47 language tag, e.g. en-US.")
    is_reinstall = models.BooleanField(default=False)
    is_reengagement = models.BooleanField(default=False, help_text="This event recorded a reengagement.")
    postbacks_scheduled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at"]
        # An app's event_id is unique through EventKey: a unique constraint here could not
        # span the table's daily partitions on PostgreSQL.
        indexes = [
            models.Index(fields=["device", "occurred_at"], name="event_device_time_idx"),
            # Retention deletes the oldest received first (postbacks/retention.py).
            models.Index(fields=["received_at"], name="event_received_idx"),
            # Support's search by event id, however old (EventKey keeps a week's). Not unique:
            # on PostgreSQL each day's partition has its own, small, index.
            models.Index(fields=["app", "event_id"], name="event_app_event_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.event_id}"


class EventKey(models.Model):
    """An app's event_id, stored with its event and unique per app: what makes a repeated event
    a duplicate. Unlike the events, which are partitioned by day on PostgreSQL, this table is
    one, so the uniqueness spans every day. A key is kept EVENT_MAX_AGE_DAYS + 1 days, after
    which the event's own age refuses a replay (docs/retention.md#idempotency)."""

    # The event's id: looked up by it, and deleted with it by Django's cascade.
    event = models.OneToOneField(
        Event, on_delete=models.CASCADE, primary_key=True, related_name="key", db_constraint=False
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=128, help_text="The event's event_id.")
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="event_key_unique")]
        # No index of received_at: retention walks the keys in the order of their events' ids,
        # which is the order they came in, and stops at the first it keeps (postbacks/retention.py).

    def __str__(self) -> str:
        return self.key
