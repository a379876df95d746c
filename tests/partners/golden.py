"""Golden renderings of the shipped catalogue: a certified postback of a catalogue partner,
rendered from a realistic event through the real ingest path (attribution, the tracking and
consent policy, the planner, the template language), read back as the stored request.

Each partner's test (tests/partners/test_partner_<slug>.py) asserts on what this returns the
requirements of that partner's documentation, citing its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from events.services import EventInput, click_record
from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from project import clock
from tests import factories

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
ADID = "38400000-8CF0-11BD-B23E-10B96E40000D"
IDFV = "599F9C00-92DC-4B5C-9464-7971F01F8370"
DEVICE_IP = "203.0.113.7"
USER_AGENTS = {
    "android": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)",
    "ios": "Rocket/3.2.1 CFNetwork/1494.0.7 Darwin/23.4.0",
}
DEVICE_MODELS = {"android": "Pixel 8", "ios": "iPhone15,2"}  # as the OS reports it (Build.MODEL, utsname.machine)
LANGUAGE = "en-US"
PACKAGES = {"android": "com.acme.rocket", "ios": "com.acme.rocketios"}
SESSION_AT = T0 + timedelta(hours=25)  # SessionBegin postbacks skip the install's first 24 hours
EVENTS = ("install", "session_begin", "purchase", "level_complete")  # level_complete: a custom event
PLATFORMS = ("android", "ios")


def occurred_at(event: str) -> datetime:
    """When render()'s event happened: the install at T0, its SessionBegin a day later, others an hour after it."""
    if event == "install":
        return T0
    return SESSION_AT if event == "session_begin" else T0 + timedelta(hours=1)


def every_case(events=EVENTS, *, attributed: bool = True):
    """The matrix a partner's main golden test runs: each event on each platform, tracking allowed and
    denied, and (for a network, not an analytics partner) attributed to it and organic."""
    names = ("event", "platform", "tracking_allowed") + (("attributed",) if attributed else ())
    cases = [
        pytest.param(event, platform, allowed, *([won] if attributed else []), id="-".join(ids))
        for event in events
        for platform in PLATFORMS
        for allowed in (True, False)
        for won in ((True, False) if attributed else (True,))
        for ids in [
            [event, platform, "allowed" if allowed else "denied"]
            + (["attributed" if won else "organic"] if attributed else [])
        ]
    ]
    return pytest.mark.parametrize(names, cases)


@dataclass
class Sent:
    """The stored request of one delivery, read as a partner's server would read it."""

    method: str
    url: str
    headers: dict[str, str]
    body: str
    query: dict[str, str] = field(default_factory=dict)  # the URL's query, one value per name
    form: dict[str, str] = field(default_factory=dict)  # a form body, one value per name
    json: object = None  # a JSON body, parsed
    withheld: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)

    @property
    def parameters(self) -> dict[str, str]:
        """What the partner reads as parameters: the query, and a form body's fields over it."""
        return {**self.query, **self.form}


def render(
    *,
    partner_slug: str,
    event: str,
    platform: str,
    fields: dict[str, str],
    tracking_allowed: bool = True,
    attributed: bool = True,
    delivery_method: str = "all",
    revenue: str = "4.99",
    currency: str = "USD",
    tracking: dict | None = None,
) -> Sent:
    """One delivery of `partner_slug`'s certified postback for `event` ("install",
    "session_begin", "purchase" or a custom event such as "level_complete") on an app of
    `platform` ("android" or "ios"), from the shipped catalogue.

    tracking_allowed: the device allows tracking (ATT authorized on iOS, limit_ad_tracking
    false, consent given) or denies it (ATT denied, limit_ad_tracking true, consent refused).
    attributed: the install was driven by this partner (a click on its tracker within the
    lookback window) or is organic (the postback goes out anyway: delivery method "all").
    tracking: other values than those two, e.g. {"att_status": "denied", "limit_ad_tracking":
    False, "consent_ad_user_data": True, "consent_ad_personalization": True}."""
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == partner_slug])
    partner = Partner.objects.get(slug=partner_slug)
    account = factories.make_account(f"Golden {partner_slug} {platform} {event}")
    app = factories.make_app(account, name=f"Rocket {platform}", platform=platform, package=PACKAGES[platform])
    configuration = factories.make_partner_configuration(app, partner, **fields)
    postback = factories.make_certified_postback(configuration, event=event, delivery_method=delivery_method)
    ids = {"adid": ADID} if platform == "android" else {"idfa": IDFA, "idfv": IDFV}
    if attributed:
        tracker = factories.make_tracker(app, partner)
        click_record(
            tracker=tracker,
            clicked_at=T0 - timedelta(hours=2),
            device_ids=ids,
            click_id="clk-7f3a",
            ip=DEVICE_IP,
            user_agent=USER_AGENTS[platform],
            parameters={"campaign_id": "cmp-42", "campaign_name": "Autumn"},
        )
    tracking = tracking or (
        {
            "att_status": "authorized" if platform == "ios" else None,
            "limit_ad_tracking": False,
            "consent_ad_user_data": True,
            "consent_ad_personalization": True,
        }
        if tracking_allowed
        else {
            "att_status": "denied" if platform == "ios" else None,
            "limit_ad_tracking": True,
            "consent_ad_user_data": False,
            "consent_ad_personalization": False,
        }
    )
    install = _ingest(app, "evt-install", "install", occurred_at("install"), ids, platform, tracking)
    stored = install
    if event == "session_begin":
        # A day after the install: the install's own 24-hour period has its SessionBegin in the install.
        stored = _ingest(app, "evt-session", "session_begin", occurred_at(event), ids, platform, tracking)
    elif event != "install":
        money = {"revenue": Decimal(revenue), "currency": currency} if event == "purchase" else {}
        stored = _ingest(app, f"evt-{event}", event, occurred_at(event), ids, platform, tracking, **money)
    delivery = Delivery.objects.get(event=stored, configuration=postback)
    return _read(delivery)


def _ingest(app, event_id, name, at, ids, platform, tracking, **extra):
    data = EventInput(
        event_id=event_id,
        name=name,
        device_ids=ids,
        occurred_at=at,
        ip=DEVICE_IP,
        user_agent=USER_AGENTS[platform],
        os_version="14" if platform == "android" else "17.4",
        app_version="3.2.1",
        country="US",
        device_model=DEVICE_MODELS[platform],
        language=LANGUAGE,
        att_status=tracking["att_status"] or "",
        limit_ad_tracking=tracking["limit_ad_tracking"],
        consent_ad_user_data=tracking["consent_ad_user_data"],
        consent_ad_personalization=tracking["consent_ad_personalization"],
        **extra,
    )
    with clock.frozen(at + timedelta(seconds=1)):
        return events_ingest(app=app, items=[data])[0].event


def _read(delivery: Delivery) -> Sent:
    sent = Sent(
        method=delivery.method,
        url=delivery.url,
        headers=dict(delivery.headers),
        body=delivery.body,
        query=dict(parse_qsl(urlsplit(delivery.url).query, keep_blank_values=True)),
        withheld=getattr(delivery, "withheld", ""),
    )
    content_type = (sent.header("Content-Type") or "").split(";")[0].strip()
    if content_type == "application/json":
        sent.json = json.loads(delivery.body)
    elif content_type == "application/x-www-form-urlencoded":
        sent.form = dict(parse_qsl(delivery.body, keep_blank_values=True))
    return sent
