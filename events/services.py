"""Writes on apps (HackSoft style: keyword-only, typed, named <entity>_<action>)."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from events import queries
from events.app_cache import app_profile
from events.models import TRACKING_FIELDS, App, Click, Device, DeviceIdentifier, Event, Tracker, new_api_key
from project.bulk import rows_insert, rows_update, saved


@transaction.atomic
def app_issue_api_key(*, app: App, key: str | None = None) -> str:
    """Give the app a new API key (random unless one is imported) and return it.

    Only its hash is stored, so the returned key is the one chance to show it; the old key
    stops working (at once in this process, within 5 s in others: events/app_cache.py).
    """
    key = key or new_api_key()
    app.set_api_key(key)
    if app.pk:
        app.api_key_rotated_at = timezone.now()
    app.save()
    return key


@dataclass(frozen=True)
class EventInput:
    """A validated event, as the API (or a replay) hands it to ingestion."""

    event_id: str
    name: str
    device_ids: dict[str, str]
    occurred_at: datetime
    ip: str | None = None
    user_agent: str = ""
    os_version: str = ""
    app_version: str = ""
    country: str = ""
    revenue: Decimal | None = None
    currency: str = ""
    value: str = ""
    properties: dict = field(default_factory=dict)
    # Tracking and consent as the event reports them; ""/None: not reported.
    att_status: str = ""
    limit_ad_tracking: bool | None = None
    consent_ad_user_data: bool | None = None
    consent_ad_personalization: bool | None = None
    device_model: str = ""
    language: str = ""  # a BCP 47 tag, case-normalised (events/serializers.py language_tag)

    def tracking_reported(self) -> dict:
        """The tracking and consent fields this event reports, by name."""
        return {
            name: value
            for name in TRACKING_FIELDS
            if (value := getattr(self, name)) is not None and value != ""  # False is reported
        }


@dataclass(frozen=True)
class RecordOutcome:
    event: Event
    created: bool  # False: the event_id was known, `event` is the first one


TRACKING_STATE_FIELDS = [*TRACKING_FIELDS, "tracking_reported_at"]


def device_tracking_update(device: Device, item: EventInput) -> bool:
    """Keep on the device what the event reports about tracking and consent, unless a later
    event (by event time) reported first; fields it does not report stay as they were.
    True when the device changed."""
    reported = item.tracking_reported()
    if not reported or (device.tracking_reported_at is not None and item.occurred_at < device.tracking_reported_at):
        return False
    for name, value in reported.items():
        setattr(device, name, value)
    device.tracking_reported_at = item.occurred_at
    return True


INSTALL_FIELDS = [
    "installed_at",
    "install_tracker",
    "install_click",
    "network",
    "agency",
    "campaign_id",
    "campaign_name",
]
REENGAGEMENT_FIELDS = [
    "reengaged_at",
    "reengagement_tracker",
    "reengagement_click",
    "reengagement_network",
    "reengagement_agency",
]


@dataclass(frozen=True)
class AttributedEvents:
    """What events_attribute decided: one outcome per item, and the new events to insert
    (unsaved, their devices saved, each with the device's tracking as the event left it)."""

    outcomes: list[RecordOutcome]
    new_events: list[Event]


def events_attribute(
    *, app: App, items: list[EventInput], received_at: datetime, check_known: bool = True
) -> AttributedEvents:
    """Attribute events in order: find or create their devices, link new identifiers, decide
    installs and reengagements, and store the devices; the events themselves are left to
    events_insert. Call both inside one transaction. Concurrent writers of the same event or
    identifier make it raise IntegrityError, and the caller runs it again. With
    check_known=False the lookup of already-stored event_ids is skipped: a duplicate then
    raises IntegrityError at events_insert."""
    return _EventBatch(app=app, items=items, received_at=received_at, check_known=check_known).attribute()


def events_insert(*, events: list[Event]) -> None:
    """Insert the new events events_attribute returned (after their deliveries are planned,
    so that each goes in with its postbacks_scheduled), with their keys: an event_id stored
    already raises IntegrityError."""
    queries.events_insert(events=events)


class _EventBatch:
    def __init__(self, *, app: App, items: list[EventInput], received_at: datetime, check_known: bool):
        self.app = app
        self.check_known = check_known
        self.items = items
        self.received_at = received_at
        self.owners: dict[tuple[str, str], Device] = {}  # (kind, value) → device
        self.device_pairs: dict[int, set[tuple[str, str]]] = {}  # id(device) → its (kind, value) pairs
        self.devices_by_pk: dict[int, Device] = {}
        self.new_devices: list[Device] = []
        self.new_identifiers: list[DeviceIdentifier] = []
        # Stored devices this batch changes: pk → the fields to write, and reinstall counts.
        self.changed_fields: dict[int, set[str]] = {}
        self.installs: Counter[int] = Counter()
        self.clicks: list[Click] = []

    def attribute(self) -> AttributedEvents:
        attributed = self.decide()
        self._write_devices()
        return attributed

    def decide(self) -> AttributedEvents:
        """Read what the rules need and apply them, in memory: nothing is written yet."""
        known_events = self._load_known_events() if self.check_known else {}
        self._load_devices()
        self._load_clicks()
        outcomes: list[RecordOutcome] = []
        pending: dict[str, Event] = {}
        for item in self.items:
            first = known_events.get(item.event_id) or pending.get(item.event_id)
            if first is not None:
                outcomes.append(RecordOutcome(event=first, created=False))
                continue
            event = self._apply(item)
            pending[item.event_id] = event
            outcomes.append(RecordOutcome(event=event, created=True))
        return AttributedEvents(outcomes=outcomes, new_events=list(pending.values()))

    # reads ----------------------------------------------------------------------------
    def _load_known_events(self) -> dict[str, Event]:
        """The batch's event_ids already stored (asked for ids alone first: usually none are)."""
        known = queries.event_pks_stored(app_id=self.app.pk, event_ids={item.event_id for item in self.items})
        return {event.event_id: event for event in Event.objects.filter(pk__in=known)} if known else {}

    def _load_devices(self) -> None:
        """The stored devices owning any identifier of the batch."""
        values = self._batch_values()
        if values:
            for kind, value, device in queries.devices_owning(app_id=self.app.pk, values_by_kind=values):
                device = self.devices_by_pk.setdefault(device.pk, device)
                self._link(device, (kind, value))

    def _load_other_identifiers(self) -> None:
        """Click matching needs every identifier of a device, not only those this batch carries."""
        if self.devices_by_pk:
            for kind, value, device_id in queries.identifiers_of(app_id=self.app.pk, device_ids=self.devices_by_pk):
                self._link(self.devices_by_pk[device_id], (kind, value))

    def _batch_values(self) -> dict[str, set[str]]:
        values: dict[str, set[str]] = {}
        for pair in [*(pair for item in self.items for pair in item.device_ids.items()), *self.owners]:
            values.setdefault(pair[0], set()).add(pair[1])
        return values

    def _load_clicks(self) -> None:
        """Every click that could attribute an install or a reengagement of this batch."""
        installs = [item for item in self.items if item.name == "install"]
        reengagements = app_profile(self.app).has_reengagement_trackers and any(
            device.installed_at for device in self.owners.values()
        )
        if not (installs or reengagements):
            return
        self._load_other_identifiers()
        # Installs alone (no reengagement to decide): only the ids their devices may be known by.
        values = self._batch_values() if reengagements else self._values_linked_to(installs)
        earliest = min(item.occurred_at for item in self.items) - timedelta(days=self.app.lookback_days)
        latest = max(item.occurred_at for item in self.items)
        self.clicks = queries.clicks_matching(
            app_id=self.app.pk, values_by_kind=values, earliest=earliest, latest=latest
        )

    def _values_linked_to(self, items: list[EventInput]) -> dict[str, set[str]]:
        """Every id the device of one of `items` may be known by once the batch is applied: the
        ids linked to theirs by an item of the batch or a stored device (a device's ids are
        those of its stored identifiers and of the items it takes), as kind → values. A click
        lookup for a batch's installs then asks for their ids, not for every event's."""
        parent: dict[tuple[str, str], tuple[str, str]] = {}

        def root(pair: tuple[str, str]) -> tuple[str, str]:
            parent.setdefault(pair, pair)
            while parent[pair] != pair:
                parent[pair] = parent[parent[pair]]
                pair = parent[pair]
            return pair

        groups = [list(item.device_ids.items()) for item in self.items] + [
            list(pairs) for pairs in self.device_pairs.values()
        ]
        for group in groups:
            for pair in group[1:]:
                parent[root(pair)] = root(group[0])
        roots = {root(pair) for item in items for pair in item.device_ids.items()}
        values: dict[str, set[str]] = {}
        for pair in list(parent):
            if root(pair) in roots:
                values.setdefault(pair[0], set()).add(pair[1])
        return values

    # the rules, in memory ---------------------------------------------------------------
    def _device_for(self, item: EventInput) -> Device:
        """The device owning any of the item's ids (the oldest if several), else a new one;
        ids it did not have are linked to it, ids owned by another device stay there."""
        candidates = [self.owners[pair] for pair in item.device_ids.items() if pair in self.owners]
        if candidates and all(device is candidates[0] for device in candidates):
            device = candidates[0]
        elif candidates:
            # The oldest device wins: stored ones by id, then new ones in the order they appeared.
            device = min(candidates, key=lambda d: (d.pk is None, d.pk or self.new_devices.index(d)))
        else:
            device = Device(app=self.app)
            self.new_devices.append(device)
        for pair in item.device_ids.items():
            if pair not in self.owners:
                self._link(device, pair)
                self.new_identifiers.append(DeviceIdentifier(app=self.app, device=device, kind=pair[0], value=pair[1]))
        return device

    def _link(self, device: Device, pair: tuple[str, str]) -> None:
        self.owners[pair] = device
        self.device_pairs.setdefault(id(device), set()).add(pair)

    def _latest_click(
        self, item: EventInput, device: Device, *, kind: str, after: datetime | None = None
    ) -> Click | None:
        """The latest click of `kind` carrying any identifier the device is known by, in the window."""
        earliest = item.occurred_at - timedelta(days=self.app.lookback_days)
        if after is not None and after > earliest:
            earliest = after
        pairs = self.device_pairs.get(id(device), set())
        matching = [
            click
            for click in self.clicks
            if click.tracker.kind == kind
            and earliest <= click.clicked_at <= item.occurred_at
            and any((id_kind, getattr(click, id_kind)) in pairs for id_kind, _ in pairs)
        ]
        return max(matching, key=lambda click: (click.clicked_at, click.pk), default=None)

    def _apply(self, item: EventInput) -> Event:
        device = self._device_for(item)
        is_reinstall = is_reengagement = False
        changed: list[str] = []
        if item.name == "install":
            if device.install_count == 0:
                self._attribute_install(device, item)
                changed = INSTALL_FIELDS
            else:
                is_reinstall = True
            device.install_count += 1
            if device.pk is not None:
                self.installs[device.pk] += 1
        elif device.installed_at is not None:
            is_reengagement = self._reengage(device, item)
            changed = REENGAGEMENT_FIELDS if is_reengagement else []
        if device_tracking_update(device, item):
            changed = [*changed, *TRACKING_STATE_FIELDS]
        if device.pk is not None and changed:
            self.changed_fields.setdefault(device.pk, set()).update(changed)
        row = _event_columns(app=self.app, item=item, received_at=self.received_at)
        row.update(id=None, device_id=device.pk, is_reinstall=is_reinstall, is_reengagement=is_reengagement)
        event = _event_instance(row, app=self.app, device=device)
        # The device's tracking and consent as this event left them: its postbacks, planned once
        # the whole batch is applied, must not read a later event's report (postbacks tracking_for).
        event.device_tracking = {name: getattr(device, name) for name in TRACKING_FIELDS}
        return event

    def _attribute_install(self, device: Device, item: EventInput) -> None:
        device.installed_at = item.occurred_at
        click = self._latest_click(item, device, kind=Tracker.Kind.ACQUISITION)
        if click is None:
            return  # organic
        tracker = click.tracker
        device.install_click = click
        device.install_tracker = tracker
        device.network_id = tracker.network_id
        device.agency_id = tracker.agency_id
        device.campaign_id = tracker.campaign_id
        device.campaign_name = tracker.campaign_name

    def _reengage(self, device: Device, item: EventInput) -> bool:
        # Only a click after the current anchor counts: an older one was already used (or lost).
        click = self._latest_click(item, device, kind=Tracker.Kind.REENGAGEMENT, after=device.session_anchor)
        if click is None or click.pk == device.reengagement_click_id:
            return False
        device.reengaged_at = item.occurred_at
        device.reengagement_click = click
        device.reengagement_tracker = click.tracker
        device.reengagement_network_id = click.tracker.network_id
        device.reengagement_agency_id = click.tracker.agency_id
        return True

    # writes ---------------------------------------------------------------------------
    def _write_devices(self) -> None:
        if self.new_devices:
            rows_insert(Device, self.new_devices)
        if self.new_identifiers:
            rows_insert(DeviceIdentifier, self.new_identifiers)
        # First installs and reengagements of stored devices: one statement per set of fields
        # written (only those, so a concurrent change to the others is not overwritten).
        by_fields: dict[tuple[str, ...], list[Device]] = {}
        for pk, fields in self.changed_fields.items():
            by_fields.setdefault(tuple(sorted(fields)), []).append(self.devices_by_pk[pk])
        for fields, devices in by_fields.items():
            rows_update(Device, devices, list(fields))
        # Install counts move relative to the stored value: concurrent installs add up.
        by_count: dict[int, list[int]] = {}
        for pk, count in self.installs.items():
            by_count.setdefault(count, []).append(pk)
        for count, pks in by_count.items():
            Device.objects.filter(pk__in=pks).update(install_count=F("install_count") + count)


def event_record_direct(*, app: App, item: EventInput, received_at: datetime) -> Event | None:
    """Store a lone event in one statement when that is all it writes; None when it writes
    more (or its event_id is already stored), and then events_attribute decides, in a
    transaction. PostgreSQL only (the statements insert from a query); elsewhere None.

    - An event that needs no decision (not an install, no tracking or consent reported, an
      app without reengagement trackers) of a device that owns every identifier it carries:
      the event row alone.
    - An install the rules (read outside a transaction) give a new device: the device, its
      identifiers and the event. Whatever was stored meanwhile makes the statement fail whole.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    if db.vendor != "postgresql" or not item.device_ids:
        return None
    try:
        # In a caller's transaction, a failure must not spoil the rest of it.
        with transaction.atomic() if db.in_atomic_block else contextlib.nullcontext():
            if item.name == "install":
                row, stored = _new_device_install(app=app, item=item, received_at=received_at)
            elif item.tracking_reported() or app_profile(app).has_reengagement_trackers:
                return None
            else:
                row = _event_columns(app=app, item=item, received_at=received_at)
                stored = queries.event_insert_for_sole_owner(row=row, device_ids=item.device_ids)
    except IntegrityError:  # its event_id or an identifier was stored first
        return None
    if stored is None:
        return None
    row["id"], row["device_id"] = stored
    event = _event_instance(row, app=app)
    saved(event, event.pk, alias=db.alias)
    return event


def _new_device_install(*, app: App, item: EventInput, received_at: datetime) -> tuple[dict, tuple[int, int] | None]:
    """A lone install as the rules decide it: its event's row, and its (id, device_id) once
    stored in one statement if the rules gave it a new device; else (row, None), nothing stored."""
    batch = _EventBatch(app=app, items=[item], received_at=received_at, check_known=False)
    [event] = batch.decide().new_events
    row = {field.attname: getattr(event, field.attname) for field in Event._meta.concrete_fields}
    if batch.devices_by_pk or len(batch.new_devices) != 1:
        return row, None
    return row, queries.device_insert_with_event(device=event.device, identifiers=batch.new_identifiers, row=row)


def _event_columns(*, app: App, item: EventInput, received_at: datetime) -> dict:
    """Every column of a new event's row but id and device_id."""
    return {
        "app_id": app.pk,
        "event_id": item.event_id,
        "name": item.name,
        "device_ids": item.device_ids,
        "occurred_at": item.occurred_at,
        "received_at": received_at,
        "ip": item.ip,
        "user_agent": item.user_agent,
        "os_version": item.os_version,
        "app_version": item.app_version,
        "country": item.country,
        "revenue": item.revenue,
        "currency": item.currency,
        "value": item.value,
        "properties": item.properties,
        "att_status": item.att_status,
        "limit_ad_tracking": item.limit_ad_tracking,
        "consent_ad_user_data": item.consent_ad_user_data,
        "consent_ad_personalization": item.consent_ad_personalization,
        "device_model": item.device_model,
        "language": item.language,
        "is_reinstall": False,
        "is_reengagement": False,
        "postbacks_scheduled": 0,
    }


def _event_instance(row: dict, *, app: App, device: Device | None = None) -> Event:
    """An Event from every column of its row, built positionally (cheaper than
    Model.__init__'s keywords). `device` is kept even if saved only later."""
    event = Event(*(row[field.attname] for field in Event._meta.concrete_fields))
    Event.app.field.set_cached_value(event, app)
    if device is not None:
        Event.device.field.set_cached_value(event, device)
    return event


def click_record(
    *,
    tracker: Tracker,
    clicked_at: datetime,
    device_ids: dict[str, str],
    click_id: str,
    ip: str | None,
    user_agent: str,
    parameters: dict[str, str],
) -> Click:
    return Click.objects.create(
        app_id=tracker.app_id,
        tracker=tracker,
        clicked_at=clicked_at,
        click_id=click_id,
        ip=ip,
        user_agent=user_agent,
        parameters=parameters,
        **device_ids,
    )
