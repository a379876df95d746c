"""Which postbacks events produce (called inside the ingest transaction), and their values."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, timedelta

from django.db import transaction

from events.models import App, Click, Device, Event, Tracker
from partners.models import Partner
from postbacks import http, metrics
from postbacks.conditions import condition_unmet
from postbacks.configuration_cache import app_configurations, partners_by_pk
from postbacks.models import Delivery, PostbackConfiguration, SessionPeriodClaim
from postbacks.rendering import RenderedRequest, RenderError, render_postback, sample_values, values_for
from postbacks.retention import deliveries_expiring, expiring_delete
from postbacks.signing import signed_headers
from project import clock
from project.bulk import rows_insert

SESSION_PERIOD = timedelta(hours=24)


@dataclass(frozen=True)
class Attribution:
    """The conversion an event is credited to: the install's, or the latest reengagement's."""

    kind: str  # "install" or "reengagement"
    network: Partner | None
    agency: Partner | None
    tracker: Tracker | None
    click: Click | None
    campaign_id: str
    campaign_name: str


def configurations_listen_to(*, app: App, event_name: str) -> bool:
    """Whether any configuration of the app (active or not) would store a delivery for the event."""
    return any(configuration.fires_on == event_name for configuration in app_configurations(app))


def deliveries_plan(*, app: App, events: list[Event]) -> list[Delivery]:
    """A Delivery for every configuration of the app that listens to each event: scheduled
    (with the exact request), or skipped with the reason; each event's postbacks_scheduled
    counts its scheduled ones. Call in the ingestion transaction once the events' devices are
    saved and before the events are, so each event is stored with its count; then
    deliveries_store."""
    configurations = app_configurations(app)
    if not configurations or not events:
        return []
    context = _Context(app=app, events=events)
    deliveries: list[Delivery] = []
    for event in events:
        for configuration in configurations:
            if configuration.fires_on != event.name:
                continue
            delivery = context.delivery_for(configuration, event)
            deliveries.append(delivery)
            if delivery.status == Delivery.Status.SCHEDULED:
                event.postbacks_scheduled += 1
    return deliveries


def deliveries_store(*, deliveries: list[Delivery]) -> None:
    """Insert planned deliveries (their events are saved by now) and the SessionBegin periods
    they claim; count them once committed. A period a concurrent transaction claimed first
    raises IntegrityError, and ingestion runs again, then seeing it."""
    if not deliveries:
        return
    claims = [
        SessionPeriodClaim(
            device=delivery.device,
            configuration=delivery.configuration,
            period=delivery.session_period,
            claimed_at=delivery.created_at,
        )
        for delivery in deliveries
        if delivery.session_period is not None
    ]
    if claims:
        rows_insert(SessionPeriodClaim, claims)
    rows_insert(Delivery, deliveries)
    created = Counter((delivery.configuration.partner_label, delivery.status) for delivery in deliveries)
    transaction.on_commit(lambda: _count_created(created))


def _count_created(created: Counter) -> None:
    for (partner, status), count in created.items():
        metrics.DELIVERIES_CREATED.labels(partner=partner, status=status).inc(count)


class _Context:
    """What the rules need about a batch of events, loaded in a few queries."""

    def __init__(self, *, app: App, events: list[Event]):
        self.app = app
        self.partners = partners_by_pk()
        # Events not saved yet: their devices are (device_id is read from the device at insert).
        devices = {event.device.pk: event.device for event in events}
        tracker_ids = {
            pk for d in devices.values() for pk in (d.install_tracker_id, d.reengagement_tracker_id) if pk is not None
        }
        click_ids = {
            pk for d in devices.values() for pk in (d.install_click_id, d.reengagement_click_id) if pk is not None
        }
        self.trackers = Tracker.objects.in_bulk(tracker_ids) if tracker_ids else {}
        self.clicks = Click.objects.in_bulk(click_ids) if click_ids else {}
        sessions = [event for event in events if event.name == "session_begin"]
        self.used_periods: set[tuple[int, int, int]] = set()
        if sessions:
            self.used_periods = set(
                SessionPeriodClaim.objects.filter(device_id__in={event.device.pk for event in sessions}).values_list(
                    "configuration_id", "device_id", "period"
                )
            )

    def attribution(self, event: Event) -> Attribution:
        device = event.device
        if device.reengaged_at is not None and event.occurred_at >= device.reengaged_at:
            tracker = self.trackers.get(device.reengagement_tracker_id)
            return Attribution(
                kind="reengagement",
                network=self.partners.get(device.reengagement_network_id),
                agency=self.partners.get(device.reengagement_agency_id),
                tracker=tracker,
                click=self.clicks.get(device.reengagement_click_id),
                campaign_id=tracker.campaign_id if tracker else "",
                campaign_name=tracker.campaign_name if tracker else "",
            )
        return Attribution(
            kind="install",
            network=self.partners.get(device.network_id),
            agency=self.partners.get(device.agency_id),
            tracker=self.trackers.get(device.install_tracker_id),
            click=self.clicks.get(device.install_click_id),
            campaign_id=device.campaign_id,
            campaign_name=device.campaign_name,
        )

    def delivery_for(self, configuration: PostbackConfiguration, event: Event) -> Delivery:
        device = event.device
        delivery = Delivery(
            app=self.app,
            configuration=configuration,
            event=event,
            event_name=event.name,
            device=device,
            created_at=event.received_at,
            max_attempts=1 + configuration.retry_attempts,
        )
        attribution = self.attribution(event)
        reason = _inactive_reason(configuration) or _audience_reason(configuration, attribution)
        tracking = values = None
        if reason is None and configuration.conditions:
            tracking = tracking_for(event, device)
            values = macro_values(event, device, attribution, tracking)
            reason = _condition_reason(configuration, values)
        # Last: a SessionBegin skipped for another reason leaves its 24-hour period unclaimed.
        if reason is None and event.name == "session_begin":
            reason = self._claim_session_period(configuration, event, device, delivery)
        if reason is not None:
            delivery.status = Delivery.Status.SKIPPED
            delivery.skip_reason = reason
            delivery.session_period = None
            return delivery
        if values is None:
            tracking = tracking_for(event, device)
            values = macro_values(event, device, attribution, tracking)
        delivery.withheld = tracking.withheld_reason
        try:
            request = render_postback(configuration=configuration, values=values)
        except RenderError as error:
            delivery.status = Delivery.Status.FAILED
            delivery.last_error = f"Cannot build the request: {error}"
            delivery.finished_at = event.received_at
            return delivery
        delivery.method, delivery.url, delivery.headers, delivery.body = (
            request.method,
            request.url,
            request.headers,
            request.body,
        )
        delivery.due_at = event.received_at + timedelta(seconds=configuration.delay_seconds)
        return delivery

    def _claim_session_period(self, configuration, event: Event, device: Device, delivery: Delivery) -> str | None:
        """SessionBegin: nothing in the first 24 h after the anchor, then one per 24-hour period."""
        anchor = device.session_anchor
        if anchor is None:
            return "No install recorded for this device: SessionBegin postbacks count from the install."
        if event.occurred_at < anchor:
            return "The session began before the device's install or latest reengagement."
        period = int((event.occurred_at - anchor) / SESSION_PERIOD)
        anchor_name = "reengagement" if device.reengaged_at else "install"
        if period == 0:
            return (
                f"Inside the first 24 hours after the {anchor_name} ({anchor:%Y-%m-%d %H:%M} UTC): "
                "SessionBegin postbacks start 24 hours later."
            )
        key = (configuration.pk, device.pk, period)
        if key in self.used_periods:
            start = anchor + period * SESSION_PERIOD
            return f"Already sent for this device in the 24-hour period from {start:%Y-%m-%d %H:%M} UTC."
        self.used_periods.add(key)
        delivery.session_period = period
        return None


def _inactive_reason(configuration: PostbackConfiguration) -> str | None:
    if configuration.status != PostbackConfiguration.Status.ACTIVE:
        return "The postback configuration is inactive."
    return None


def _condition_reason(configuration: PostbackConfiguration, values: dict[str, str]) -> str | None:
    return condition_unmet(configuration.conditions, values_for(configuration=configuration, values=values))


def _audience_reason(configuration: PostbackConfiguration, attribution: Attribution) -> str | None:
    """Why a certified network's or agency's delivery method excludes this event, or None."""
    partner = configuration.partner
    method = configuration.delivery_method
    if partner is None or partner.kind == Partner.Kind.ANALYTICS or method == configuration.DeliveryMethod.ALL:
        return None
    network, agency = attribution.network, attribution.agency
    conversion = "reengagement" if attribution.kind == "reengagement" else "install"
    if network is None:
        return (
            f"The {conversion} is unattributed (organic); {configuration.get_delivery_method_display()} "
            f"sends only what {partner.name} drove."
        )
    if partner.kind == Partner.Kind.AGENCY:
        if agency is not None and agency.pk == partner.pk:
            return None
        return f"The {conversion} came from {network.name} without {partner.name}'s trackers."
    if network.pk != partner.pk:
        return f"The {conversion} is attributed to {network.name}, not {partner.name}."
    if agency is not None and method == configuration.DeliveryMethod.NETWORK_ONLY:
        return (
            f"The {conversion} came through the agency {agency.name}; Network Only excludes agency traffic "
            "(choose Network + Agency to include it)."
        )
    return None


@dataclass(frozen=True)
class Tracking:
    """What an event's postbacks may say about tracking and consent, and which ids they withhold."""

    att_status: str
    limit_ad_tracking: bool | None
    consent_ad_user_data: bool | None
    consent_ad_personalization: bool | None
    withheld: dict[str, str]  # device id kind → why it is not sent

    @property
    def withheld_reason(self) -> str:
        """In words, for the delivery and the event's "why" page."""
        return " ".join(self.withheld.values())


_ID_NAMES = {"adid": "Advertising ID (adid)", "idfa": "IDFA"}


def tracking_for(event: Event, device: Device) -> Tracking:
    """The policy of every postback, certified and custom: the IDFA is sent only when App
    Tracking Transparency is authorized, and no advertising ID when the user limits ad
    tracking. Each value is the event's, else the device's latest."""

    # Ingestion leaves the device's state as of each event of a batch (events/services.py _apply).
    device_state = getattr(event, "device_tracking", None)

    def reported(name: str):
        value = getattr(event, name)
        if value is None or value == "":
            return device_state[name] if device_state is not None else getattr(device, name)
        return value

    att_status = reported("att_status")
    limit_ad_tracking = reported("limit_ad_tracking")
    ids = event.device_ids
    withheld = {}
    if limit_ad_tracking:
        for kind in ("adid", "idfa"):
            if ids.get(kind):
                withheld[kind] = f"{_ID_NAMES[kind]} withheld: the user limits ad tracking (limit_ad_tracking)."
    if ids.get("idfa") and "idfa" not in withheld and att_status != "authorized":
        status = f"att_status {att_status}" if att_status else "no att_status reported"
        withheld["idfa"] = f"IDFA withheld: App Tracking Transparency not authorized ({status})."
    return Tracking(
        att_status=att_status,
        limit_ad_tracking=limit_ad_tracking,
        consent_ad_user_data=reported("consent_ad_user_data"),
        consent_ad_personalization=reported("consent_ad_personalization"),
        withheld=withheld,
    )


def macro_values(event: Event, device: Device, attribution: Attribution, tracking: Tracking) -> dict[str, str]:
    """Every canonical macro's value for one event (see docs/macros.md), with what the
    tracking policy withholds (tracking_for) left empty."""
    app = event.app
    tracker, click, network, agency = attribution.tracker, attribution.click, attribution.network, attribution.agency
    ids = {kind: value for kind, value in event.device_ids.items() if kind not in tracking.withheld}
    limit_ad_tracking = tracking.limit_ad_tracking
    if limit_ad_tracking is None:  # never reported: an all-zero advertising ID (dropped at ingest) means limited
        limit_ad_tracking = not (event.device_ids.get("adid") or event.device_ids.get("idfa"))
    return {
        "adid": ids.get("adid", ""),
        "idfa": ids.get("idfa", ""),
        "idfv": ids.get("idfv", ""),
        "android_id": ids.get("android_id", ""),
        "device_id": ids.get("device_id", ""),
        "limit_ad_tracking": _flag(limit_ad_tracking),
        "att_status": tracking.att_status,
        "consent_ad_user_data": _flag(tracking.consent_ad_user_data),
        "consent_ad_personalization": _flag(tracking.consent_ad_personalization),
        "event_id": event.event_id,
        "event_name": event.name,
        "event_value": event.value,
        "revenue": "" if event.revenue is None else _decimal(event.revenue),
        "currency": event.currency,
        "event_time": _iso(event.occurred_at),
        "event_timestamp": str(int(event.occurred_at.timestamp())),
        "install_time": _iso(device.installed_at) if device.installed_at else "",
        "install_timestamp": str(int(device.installed_at.timestamp())) if device.installed_at else "",
        "ip": event.ip or "",
        "user_agent": event.user_agent,
        "country": event.country,
        "os_version": event.os_version,
        "app_version": event.app_version,
        "device_model": event.device_model,
        "language": event.language,
        "app_id": app.package_name,
        "app_name": app.name,
        "platform": app.platform,
        "attributed": "1" if network else "0",
        "attribution_type": attribution.kind if network else "",
        "is_reengagement": "1" if attribution.kind == "reengagement" and network else "0",
        "network_id": network.slug if network else "",
        "network_name": network.name if network else "",
        "agency_id": agency.slug if agency else "",
        "agency_name": agency.name if agency else "",
        "tracker_id": tracker.pk if tracker else "",
        "campaign_id": attribution.campaign_id,
        "campaign_name": attribution.campaign_name,
        "site_id": tracker.site_id if tracker else "",
        "creative_id": tracker.creative_id if tracker else "",
        "click_id": click.click_id if click else "",
    }


def _flag(value: bool | None) -> str:
    return "" if value is None else "1" if value else "0"


def _iso(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value) -> str:
    return format(value.normalize(), "f")


def deliveries_resend(*, deliveries) -> int:
    """Send again now, one more attempt each (the delivery id stays the same)."""
    count = 0
    now = clock.now()
    for delivery in deliveries:
        if delivery.status == Delivery.Status.SKIPPED or not delivery.url:
            continue
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.SCHEDULED,
            due_at=now,
            finished_at=None,
            lease_expires_at=None,
            max_attempts=max(delivery.max_attempts, delivery.attempts + 1),
        )
        count += 1
    return count


def deliveries_purge(*, older_than: timedelta, chunk: int = 5000) -> int:
    """Delete finished deliveries (delivered, failed, skipped) created before now - older_than,
    with their attempts, in chunks so a huge log never locks for long. Returns the count."""
    return expiring_delete(deliveries_expiring(cutoff=clock.now() - older_than), batch=chunk)


def postback_send_test(*, configuration: PostbackConfiguration) -> tuple[RenderedRequest, http.Exchange]:
    """Send the request a sample event would produce, now, signed as a delivery is, and return
    it (with the headers sent) and what came back. Nothing is stored: a test is not a delivery."""
    request = render_postback(configuration=configuration, values=sample_values(configuration=configuration))
    headers = signed_headers(
        headers={**request.headers, "X-Postback-Test": "1"},
        delivery_id=f"test-{uuid.uuid4()}",
        secret=configuration.signing_secret,
        body=request.body,
    )
    exchange = http.send(method=request.method, url=request.url, headers=headers, body=request.body)
    return replace(request, headers=headers), exchange
