"""Writes on apps (HackSoft style: keyword-only, typed, named <entity>_<action>)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from events.models import App, Click, Device, DeviceIdentifier, Event, Tracker, new_api_key


@transaction.atomic
def app_issue_api_key(*, app: App, key: str | None = None) -> str:
    """Give the app a new API key (random unless one is imported) and return it.

    Only its hash is stored, so the returned key is the one chance to show it; the old key
    stops working at once.
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


def device_resolve(*, app: App, device_ids: dict[str, str], seen_at: datetime) -> Device:
    """The app's device that owns any of these identifiers, created if none does.

    Identifiers the device did not have yet are linked to it; one already owned by another
    device stays there (the older device keeps its history).
    """
    match = Q()
    for kind, value in device_ids.items():
        match |= Q(kind=kind, value=value)
    known = list(DeviceIdentifier.objects.filter(match, app=app).select_related("device").order_by("device_id"))
    device = known[0].device if known else Device.objects.create(app=app, last_seen_at=seen_at)
    owned = {(identifier.kind, identifier.value) for identifier in known}
    DeviceIdentifier.objects.bulk_create(
        [
            DeviceIdentifier(app=app, device=device, kind=kind, value=value)
            for kind, value in device_ids.items()
            if (kind, value) not in owned
        ]
    )
    return device


def click_for_attribution(
    *, app: App, device_ids: dict[str, str], kind: str, at: datetime, after: datetime | None = None
) -> Click | None:
    """The most recent click on one of the app's `kind` trackers carrying any of these ids,
    within the app's lookback window before `at` (and after `after`, when given)."""
    match = Q()
    for id_kind, value in device_ids.items():
        match |= Q(**{id_kind: value})
    earliest = at - timedelta(days=app.lookback_days)
    if after is not None and after > earliest:
        earliest = after
    return (
        Click.objects.filter(match, app=app, tracker__kind=kind, clicked_at__gte=earliest, clicked_at__lte=at)
        .select_related("tracker")
        .order_by("-clicked_at", "-pk")
        .first()
    )


def event_record(*, app: App, data: EventInput, received_at: datetime) -> Event:
    """Store one event and update its device's attribution. Call inside a transaction."""
    device = device_resolve(app=app, device_ids=data.device_ids, seen_at=received_at)
    is_reinstall = is_reengagement = False
    if data.name == "install":
        if device.install_count == 0:
            _attribute_install(device, data)
        else:
            is_reinstall = True
        device.install_count += 1
    elif device.installed_at is not None:
        is_reengagement = _maybe_reengage(device, data)
    if device.last_seen_at is None or data.occurred_at > device.last_seen_at:
        device.last_seen_at = data.occurred_at
    device.save()
    return Event.objects.create(
        app=app,
        event_id=data.event_id,
        name=data.name,
        device=device,
        device_ids=data.device_ids,
        occurred_at=data.occurred_at,
        received_at=received_at,
        ip=data.ip,
        user_agent=data.user_agent,
        os_version=data.os_version,
        app_version=data.app_version,
        country=data.country,
        revenue=data.revenue,
        currency=data.currency,
        value=data.value,
        properties=data.properties,
        is_reinstall=is_reinstall,
        is_reengagement=is_reengagement,
    )


def _attribute_install(device: Device, data: EventInput) -> None:
    device.installed_at = data.occurred_at
    click = click_for_attribution(
        app=device.app, device_ids=data.device_ids, kind=Tracker.Kind.ACQUISITION, at=data.occurred_at
    )
    if click is None:
        return  # organic
    tracker = click.tracker
    device.install_click = click
    device.install_tracker = tracker
    device.network_id = tracker.network_id
    device.agency_id = tracker.agency_id
    device.campaign_id = tracker.campaign_id
    device.campaign_name = tracker.campaign_name


def _maybe_reengage(device: Device, data: EventInput) -> bool:
    # Only a click after the current anchor counts: an older one was already used (or lost).
    click = click_for_attribution(
        app=device.app,
        device_ids=data.device_ids,
        kind=Tracker.Kind.REENGAGEMENT,
        at=data.occurred_at,
        after=device.session_anchor,
    )
    if click is None or (device.reengagement_click_id == click.pk):
        return False
    device.reengaged_at = data.occurred_at
    device.reengagement_click = click
    device.reengagement_tracker = click.tracker
    device.reengagement_network_id = click.tracker.network_id
    device.reengagement_agency_id = click.tracker.agency_id
    return True


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
