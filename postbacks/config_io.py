"""Configuration as code: export apps with everything configured on them to JSON, and import it.

Import is all-or-nothing (one transaction), names the path of every problem
(`apps[0].postbacks[2].retry_attempts: must be between 0 and 10`), and is idempotent:
importing the same file again changes nothing. The format is documented in docs/config-as-code.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from events.models import Account, App, CustomEvent, Tracker, hash_api_key, new_api_key
from events.services import app_issue_api_key
from partners.models import Partner
from postbacks.conditions import conditions_problems
from postbacks.models import DELAY_CHOICES, PartnerConfiguration, PostbackConfiguration

FORMAT_VERSION = 1

APP_KEYS = {
    "name",
    "account",
    "platform",
    "package_name",
    "api_key",
    "lookback_days",
    "active",
    "custom_events",
    "partner_configurations",
    "trackers",
    "postbacks",
}
TRACKER_KEYS = {
    "id",
    "network",
    "agency",
    "kind",
    "campaign_id",
    "campaign_name",
    "site_id",
    "creative_id",
    "destination_url",
}
POSTBACK_KEYS = {
    "event",
    "kind",
    "partner",
    "partner_event_name",
    "destination_url",
    "method",
    "macros",
    "status",
    "match_event",
    "title",
    "supply_network_data",
    "delay_seconds",
    "retry_attempts",
    "delivery_method",
    "signing_secret",
    "conditions",
}


class ConfigImportError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    new_api_keys: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


# --- export -----------------------------------------------------------------------------


def config_export(*, apps: list[App] | None = None) -> dict[str, Any]:
    queryset = App.objects.select_related("account").order_by("account__name", "name")
    return {"version": FORMAT_VERSION, "apps": [_export_app(app) for app in (queryset if apps is None else apps)]}


def _export_app(app: App) -> dict[str, Any]:
    postbacks = sorted(
        app.postback_configurations.select_related("partner_configuration__partner"),
        key=lambda p: (p.event, p.kind, p.partner.slug if p.partner else p.destination_url, p.pk),
    )
    return {
        "name": app.name,
        "account": app.account.name,
        "platform": app.platform,
        "package_name": app.package_name,
        "lookback_days": app.lookback_days,
        "active": app.is_active,
        "custom_events": sorted(app.custom_events.values_list("name", flat=True)),
        "partner_configurations": [
            _export_partner_configuration(config)
            for config in app.partner_configurations.select_related("partner").order_by("partner__slug")
        ],
        "trackers": [
            {
                "id": tracker.id,
                "network": tracker.network.slug,
                "agency": tracker.agency.slug if tracker.agency else None,
                "kind": tracker.kind,
                "campaign_id": tracker.campaign_id,
                "campaign_name": tracker.campaign_name,
                "site_id": tracker.site_id,
                "creative_id": tracker.creative_id,
                "destination_url": tracker.destination_url,
            }
            for tracker in app.trackers.select_related("network", "agency").order_by("id")
        ],
        "postbacks": [_export_postback(postback) for postback in postbacks],
    }


def _export_partner_configuration(config: PartnerConfiguration) -> dict[str, Any]:
    exported: dict[str, Any] = {"partner": config.partner.slug, "fields": dict(sorted(config.field_values.items()))}
    # The overrides only when set, so that a configuration without them exports as before.
    if config.endpoint_base:
        exported["endpoint_base"] = config.endpoint_base
    if config.fixed_parameters:
        exported["fixed_parameters"] = dict(sorted(config.fixed_parameters.items()))
    return exported


def _export_postback(postback: PostbackConfiguration) -> dict[str, Any]:
    common = {
        "event": postback.event,
        "kind": postback.kind,
        "status": postback.status,
        "match_event": postback.match_event,
        "title": postback.title,
        "supply_network_data": postback.supply_network_data,
        "delay_seconds": postback.delay_seconds,
        "retry_attempts": postback.retry_attempts,
    }
    if postback.conditions:
        common["conditions"] = postback.conditions
    if postback.kind == PostbackConfiguration.Kind.CERTIFIED:
        return {
            **common,
            "partner": postback.partner.slug,
            "partner_event_name": postback.partner_event_name,
            "delivery_method": postback.delivery_method,
        }
    custom = {
        **common,
        "destination_url": postback.destination_url,
        "method": postback.method,
        "macros": postback.macros,
    }
    if postback.signing_secret:
        custom["signing_secret"] = postback.signing_secret
    return custom


# --- import -----------------------------------------------------------------------------


def config_import(*, document: Any, prune: bool = False) -> ImportSummary:
    """Create or update what the document describes; with `prune`, also delete what an app
    in the document has but the document does not list. Raises ConfigImportError, changing nothing."""
    importer = _Importer(prune=prune)
    with transaction.atomic():
        importer.run(document)
        if importer.problems:
            raise ConfigImportError(importer.problems)  # rolls the whole import back
    return importer.summary


class _Importer:
    def __init__(self, *, prune: bool):
        self.prune = prune
        self.problems: list[str] = []
        self.summary = ImportSummary()
        self.partners = {partner.slug: partner for partner in Partner.objects.all()}

    # helpers ---------------------------------------------------------------------------
    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def check_keys(self, data: dict, allowed: set[str], path: str) -> None:
        for key in sorted(set(data) - allowed):
            self.problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def text(self, data: dict, key: str, path: str, *, required: bool = False, default: str = "") -> str:
        value = data.get(key, default)
        if value is None and not required:
            return default
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", "must be a string")
            return default
        if required and not value.strip():
            self.problem(f"{path}.{key}", "is required")
        return value

    def integer(self, data: dict, key: str, path: str, *, default: int, low: int, high: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", f"must be a whole number between {low} and {high}")
            return default
        if not low <= value <= high:
            self.problem(f"{path}.{key}", f"must be between {low} and {high}")
            return default
        return value

    def conditions(self, data: dict, path: str) -> list:
        value = data.get("conditions", [])
        problems = conditions_problems(value)
        for problem in problems:
            self.problem(f"{path}.{problem.partition(':')[0]}", problem.partition(": ")[2])
        return [] if problems else value

    def boolean(self, data: dict, key: str, path: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", "must be true or false")
            return default
        return value

    def choice(self, data: dict, key: str, path: str, choices, *, default: str | None = None) -> str:
        value = data.get(key, default)
        allowed = [str(option) for option in choices]
        if value not in allowed:
            self.problem(f"{path}.{key}", f"must be one of {', '.join(allowed)}")
            return default or allowed[0]
        return value

    def delay(self, data: dict, path: str) -> int:
        value = data.get("delay_seconds", 0)
        allowed = [seconds for seconds, _ in DELAY_CHOICES]
        if isinstance(value, bool) or value not in allowed:
            self.problem(f"{path}.delay_seconds", f"must be one of {', '.join(map(str, allowed))} (seconds)")
            return 0
        return value

    def items(self, data: dict, key: str, path: str) -> list:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.problem(f"{path}.{key}", "must be a list")
            return []
        return value

    def partner(self, slug: Any, path: str, *, kind: str | None = None) -> Partner | None:
        partner = self.partners.get(slug) if isinstance(slug, str) else None
        if partner is None:
            self.problem(path, f"unknown partner {slug!r} (known: {', '.join(sorted(self.partners))})")
            return None
        if kind and partner.kind != kind:
            self.problem(path, f"{slug} is a {partner.get_kind_display().lower()}, not a {kind}")
            return None
        return partner

    def validated_save(self, instance, path: str, *, exclude: tuple[str, ...] = ()) -> bool:
        """full_clean and save, reporting the model's messages under `path`; False when refused."""
        try:
            instance.full_clean(exclude=list(exclude))
        except ValidationError as error:
            for field_name, messages in error.message_dict.items():
                where = path if field_name == "__all__" else f"{path}.{_EXPORT_NAMES.get(field_name, field_name)}"
                if any(problem.startswith(f"{where}: ") for problem in self.problems):
                    continue  # already reported in the file's own terms
                for message in messages:
                    self.problem(where, message.rstrip("."))
            return False
        instance.save()
        return True

    def record(self, label: str, created: bool, changed: bool) -> None:
        if created:
            self.summary.created.append(label)
        elif changed:
            self.summary.updated.append(label)

    # document --------------------------------------------------------------------------
    def run(self, document: Any) -> None:
        if not isinstance(document, dict) or not isinstance(document.get("apps"), list):
            self.problem("$", 'expected an object with an "apps" list')
            return
        self.check_keys(document, {"version", "apps"}, "$")
        seen = set()
        for index, data in enumerate(document["apps"]):
            path = f"apps[{index}]"
            if not isinstance(data, dict):
                self.problem(path, "must be an object")
                continue
            key = (data.get("account"), data.get("name"))
            if key in seen:
                self.problem(path, f"app {data.get('name')!r} of account {data.get('account')!r} appears twice")
                continue
            seen.add(key)
            self.import_app(data, path)

    def import_app(self, data: dict, path: str) -> None:
        self.check_keys(data, APP_KEYS, path)
        name = self.text(data, "name", path, required=True)
        account_name = self.text(data, "account", path, required=True)
        if not name.strip() or not account_name.strip():
            return
        account, account_created = Account.objects.get_or_create(name=account_name)
        self.record(f"account {account_name}", account_created, False)
        app = App.objects.filter(account=account, name=name).first()
        created = app is None
        if created:
            app = App(account=account, name=name)
        wanted = {
            "platform": self.choice(data, "platform", path, App.Platform.values),
            "package_name": self.text(data, "package_name", path, required=True),
            "lookback_days": self.integer(data, "lookback_days", path, default=7, low=1, high=90),
            "is_active": self.boolean(data, "active", path, default=True),
        }
        changed = _assign(app, wanted)
        api_key = self.text(data, "api_key", path)
        if api_key:
            if len(api_key) < 24:
                self.problem(f"{path}.api_key", "must be at least 24 characters")
                return
            if App.objects.filter(api_key_hash=hash_api_key(api_key)).exclude(pk=app.pk).exists():
                self.problem(f"{path}.api_key", "is already the key of another app")
                return
        if created:
            key = api_key or new_api_key()
            app.set_api_key(key)
            if not api_key:
                self.summary.new_api_keys[f"{account_name} / {name}"] = key
        if (created or changed) and not self.validated_save(app, path):
            return
        if not created and api_key and app.api_key_hash != hash_api_key(api_key):
            app_issue_api_key(app=app, key=api_key)
            changed = True
        self.record(f"app {name}", created, changed)
        self.import_custom_events(app, data, path)
        configurations = self.import_partner_configurations(app, data, path)
        self.import_trackers(app, data, path)
        self.import_postbacks(app, configurations, data, path)

    def import_custom_events(self, app: App, data: dict, path: str) -> None:
        names = []
        for index, name in enumerate(self.items(data, "custom_events", path)):
            item_path = f"{path}.custom_events[{index}]"
            if not isinstance(name, str):
                self.problem(item_path, "must be a string")
                continue
            names.append(name)
            is_new = not app.custom_events.filter(name=name).exists()
            if is_new and self.validated_save(CustomEvent(app=app, name=name), item_path):
                self.record(f"custom event {app.name}/{name}", True, False)
        if self.prune:
            for event in app.custom_events.exclude(name__in=names):
                self.summary.deleted.append(f"custom event {app.name}/{event.name}")
                event.delete()

    def import_partner_configurations(self, app: App, data: dict, path: str) -> dict[str, PartnerConfiguration]:
        configurations = {}
        for index, item in enumerate(self.items(data, "partner_configurations", path)):
            item_path = f"{path}.partner_configurations[{index}]"
            if not isinstance(item, dict):
                self.problem(item_path, "must be an object")
                continue
            self.check_keys(item, {"partner", "fields", "endpoint_base", "fixed_parameters"}, item_path)
            partner = self.partner(item.get("partner"), f"{item_path}.partner")
            fields = item.get("fields", {})
            if not isinstance(fields, dict):
                self.problem(f"{item_path}.fields", "must be an object of field name → value")
                continue
            overrides = {
                "endpoint_base": self.text(item, "endpoint_base", item_path),
                "fixed_parameters": item.get("fixed_parameters", {}),
            }
            if partner is None:
                continue
            if partner.slug in configurations:
                self.problem(item_path, f"{partner.slug} is configured twice for this app")
                continue
            config = PartnerConfiguration.objects.filter(app=app, partner=partner).first()
            created = config is None
            config = config or PartnerConfiguration(app=app, partner=partner)
            changed = _assign(config, {"field_values": fields, **overrides})
            if (created or changed) and not self.validated_save(config, item_path):
                continue
            self.record(f"partner configuration {app.name}/{partner.slug}", created, changed)
            configurations[partner.slug] = config
        if self.prune:
            for config in app.partner_configurations.exclude(partner__slug__in=list(configurations)):
                self.summary.deleted.append(f"partner configuration {app.name}/{config.partner.slug}")
                config.delete()
        return configurations

    def import_trackers(self, app: App, data: dict, path: str) -> None:
        ids = []
        for index, item in enumerate(self.items(data, "trackers", path)):
            item_path = f"{path}.trackers[{index}]"
            if not isinstance(item, dict):
                self.problem(item_path, "must be an object")
                continue
            self.check_keys(item, TRACKER_KEYS, item_path)
            tracker_id = self.text(item, "id", item_path, required=True)
            network = self.partner(item.get("network"), f"{item_path}.network", kind=Partner.Kind.NETWORK)
            agency = None
            if item.get("agency") is not None:
                agency = self.partner(item.get("agency"), f"{item_path}.agency", kind=Partner.Kind.AGENCY)
            if not tracker_id or network is None:
                continue
            tracker = Tracker.objects.filter(pk=tracker_id).first()
            if tracker is not None and tracker.app_id != app.pk:
                self.problem(f"{item_path}.id", f"tracker {tracker_id} already belongs to another app")
                continue
            created = tracker is None
            tracker = tracker or Tracker(id=tracker_id, app=app)
            wanted = {
                "network": network,
                "agency": agency,
                "kind": self.choice(item, "kind", item_path, Tracker.Kind.values, default=Tracker.Kind.ACQUISITION),
                **{
                    key: self.text(item, key, item_path)
                    for key in ("campaign_id", "campaign_name", "site_id", "creative_id")
                },
                "destination_url": self.text(item, "destination_url", item_path, required=True),
            }
            changed = _assign(tracker, wanted)
            ids.append(tracker_id)
            if (created or changed) and self.validated_save(tracker, item_path, exclude=("id",) if not created else ()):
                self.record(f"tracker {tracker_id}", created, changed)
        if self.prune:
            for tracker in app.trackers.exclude(pk__in=ids):
                self.summary.deleted.append(f"tracker {tracker.pk}")
                tracker.delete()

    def import_postbacks(self, app: App, configurations: dict[str, PartnerConfiguration], data: dict, path: str):
        kept = []
        for index, item in enumerate(self.items(data, "postbacks", path)):
            item_path = f"{path}.postbacks[{index}]"
            if not isinstance(item, dict):
                self.problem(item_path, "must be an object")
                continue
            self.check_keys(item, POSTBACK_KEYS, item_path)
            kind = self.choice(item, "kind", item_path, PostbackConfiguration.Kind.values)
            event = self.text(item, "event", item_path, required=True)
            wanted: dict[str, Any] = {
                "event": event,
                "kind": kind,
                "status": self.choice(item, "status", item_path, PostbackConfiguration.Status.values, default="active"),
                "match_event": self.text(item, "match_event", item_path),
                "title": self.text(item, "title", item_path),
                "supply_network_data": self.boolean(item, "supply_network_data", item_path, default=False),
                "delay_seconds": self.delay(item, item_path),
                "retry_attempts": self.integer(item, "retry_attempts", item_path, default=3, low=0, high=10),
                "conditions": self.conditions(item, item_path),
            }
            if kind == PostbackConfiguration.Kind.CERTIFIED:
                slug = item.get("partner")
                config = configurations.get(slug) if isinstance(slug, str) else None
                if config is None:
                    self.problem(
                        f"{item_path}.partner",
                        f"{slug!r} has no partner configuration in this app: add it to partner_configurations",
                    )
                    continue
                wanted.update(
                    partner_configuration=config,
                    partner_event_name=self.text(item, "partner_event_name", item_path),
                    delivery_method=self.choice(
                        item,
                        "delivery_method",
                        item_path,
                        PostbackConfiguration.DeliveryMethod.values,
                        default=PostbackConfiguration.DeliveryMethod.NETWORK_ONLY,
                    ),
                )
                existing = app.postback_configurations.filter(event=event, partner_configuration=config).first()
            else:
                macros = item.get("macros", [])
                wanted.update(
                    partner_configuration=None,
                    destination_url=self.text(item, "destination_url", item_path, required=True),
                    method=self.choice(item, "method", item_path, PostbackConfiguration.Method.values, default="GET"),
                    macros=macros,
                    signing_secret=self.text(item, "signing_secret", item_path),
                )
                existing = (
                    app.postback_configurations.filter(
                        kind=kind, event=event, destination_url=wanted["destination_url"], method=wanted["method"]
                    )
                    .exclude(pk__in=kept)
                    .first()
                )
            created = existing is None
            postback = existing or PostbackConfiguration(app=app)
            changed = _assign(postback, wanted)
            if (created or changed) and not self.validated_save(postback, item_path):
                continue
            kept.append(postback.pk)
            self.record(f"postback {app.name}/{event}", created, changed)
        if self.prune:
            for postback in app.postback_configurations.exclude(pk__in=kept):
                self.summary.deleted.append(f"postback {app.name}/{postback}")
                postback.delete()


_EXPORT_NAMES = {"partner_configuration": "partner", "is_active": "active", "field_values": "fields"}


def _assign(instance, values: dict[str, Any]) -> bool:
    """Set attributes that differ; True when anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(instance, name, None) != value:  # None: a relation not set yet
            setattr(instance, name, value)
            changed = True
    return changed
