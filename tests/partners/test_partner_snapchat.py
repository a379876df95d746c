"""Snapchat: Conversions API v3, app events (the v2 /v2/conversion endpoint is deprecated).

Sources:
- https://developers.snap.com/api/marketing-api/Conversions-API/UsingTheAPI (endpoint, access_token, data[] body)
- https://developers.snap.com/api/marketing-api/Conversions-API/Parameters (user_data, app_data, custom_data)
- https://developers.snap.com/api/marketing-api/Conversions-API/BestPractices (normalise, then SHA-256 lower hex)
- SEGMENT: Segment's Snap Conversions API v3 destination, segmentio/action-destinations@970a17ee,
  packages/destination-actions/src/destinations/snap-conversions-api/reportConversionEvent/snap-capi-v3.ts
  (buildAppData: the 16-slot extinfo)
"""

import hashlib

import pytest

from partners.catalogue import catalogue_read
from partners.templating import render_value
from tests.partners.golden import (
    ADID,
    DEVICE_IP,
    DEVICE_MODELS,
    IDFA,
    PACKAGES,
    USER_AGENTS,
    every_case,
    occurred_at,
    render,
)

pytestmark = pytest.mark.django_db

APP_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXBpIn0.c2lnbmF0dXJlLXNhbXBsZQ"
FIELDS = {"snap_app_id": APP_ID, "access_token": TOKEN}
EXPECTED_NAME = {
    "install": "APP_INSTALL",
    "session_begin": "APP_OPEN",
    "purchase": "PURCHASE",
    "level_complete": "LEVEL_COMPLETE",
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _nothing_empty(value, where="body"):
    if isinstance(value, dict):
        assert value, f"{where} is an empty object"
        for key, item in value.items():
            _nothing_empty(item, f"{where}.{key}")
    elif isinstance(value, list):
        assert value, f"{where} is an empty array"
        if where.endswith(".extinfo"):  # positional slots: "" is its placeholder
            return
        for index, item in enumerate(value):
            _nothing_empty(item, f"{where}[{index}]")
    else:
        assert value not in ("", None), f"{where} is empty"


@every_case()
def test_snapchat_postback_matches_the_conversions_api_v3(event, platform, tracking_allowed, attributed):
    options = {"platform": platform, "fields": FIELDS, "tracking_allowed": tracking_allowed, "attributed": attributed}
    sent = render(partner_slug="snapchat", event=event, **options)
    # UsingTheAPI: POST https://tr.snapchat.com/v3/{SNAP_APP_ID}/events?access_token={TOKEN}, a JSON body.
    assert (sent.method, sent.host, sent.path) == ("POST", "tr.snapchat.com", f"/v3/{APP_ID}/events")
    assert sent.query == {"access_token": TOKEN}
    assert sent.header("Content-Type").startswith("application/json")
    # UsingTheAPI: {"data": [event]}; Parameters: event_name, event_time, action_source are required.
    assert set(sent.json) == {"data"}
    [data] = sent.json["data"]
    assert data["event_name"] == EXPECTED_NAME[event]
    at = occurred_at(event)
    # Parameters / UsingTheAPI example: event_time is an integer of Unix seconds (1705508777).
    assert data["event_time"] == int(at.timestamp()) and isinstance(data["event_time"], int)
    assert data["action_source"] == "MOBILE_APP"
    assert data["event_id"]  # deduplication with the SDK / MMP (BestPractices)
    # BestPractices: the mobile ad id lower-cased, then SHA-256 lower hex; the IP too. Never raw.
    user = data["user_data"]
    assert user["client_ip_address"] == sha256(DEVICE_IP)
    assert DEVICE_IP not in sent.body
    assert user["client_user_agent"] == USER_AGENTS[platform]
    ad_id = ADID if platform == "android" else IDFA
    assert ad_id not in sent.body and ad_id.lower() not in sent.body
    if tracking_allowed:
        assert user["madid"] == sha256(ad_id.lower())
    else:  # ATT denied / limit_ad_tracking: the policy withholds the id; Snap is told tracking is off
        assert "madid" not in user
        assert sha256(ad_id.lower()) not in sent.body
    # Parameters (App Data) / UsingTheAPI example: advertiser_tracking_enabled is 0/1, required for app events.
    # SEGMENT: "extinfo needs to be defined whenever app_data is included in the data payload": 16 strings,
    # slot 0 a2 (Android) / i2 (iOS), 1 package, 2-3 short and long version, 4 OS version, 5 device model.
    assert data["app_data"] == {
        "app_id": PACKAGES[platform],
        "advertiser_tracking_enabled": 1 if tracking_allowed else 0,
        "extinfo": [{"android": "a2", "ios": "i2"}[platform], PACKAGES[platform], "3.2.1", "3.2.1"]
        + [{"android": "14", "ios": "17.4"}[platform], DEVICE_MODELS[platform]]
        + [""] * 10,
    }
    if event == "install" and attributed:
        assert user["sc_click_id"] == "clk-7f3a"
    else:
        assert "sc_click_id" not in user
    # Parameters (custom_data): value a number, currency ISO 4217 upper-case; only where there is revenue.
    if event == "purchase":
        assert data["custom_data"] == {"value": 4.99, "currency": "USD"}
    else:
        assert "custom_data" not in data
    _nothing_empty(sent.json)


@pytest.mark.parametrize(("ours", "snaps"), [("boss_defeated", "CUSTOM_EVENT_1"), ("CUSTOM_EVENT_3", "CUSTOM_EVENT_3")])
def test_snapchat_custom_event_with_no_snap_name_becomes_a_predefined_custom_event(ours, snaps):
    # v2 docs carried over to v3: "For custom events, you must use one of the predefined event types
    # (i.e. CUSTOM_EVENT_1)"; free event names are not in the event_name enum (Parameters). A name the
    # operator chose from Snap's list (a postback's partner event name) passes unchanged.
    [template] = [t for t in _catalogue_entry()["templates"] if t["event"] == "*"]
    value, problems = render_value(template["body"]["data"][0]["event_name"], {"event_name": ours})
    assert (value, problems) == (snaps, [])


def _catalogue_entry():
    return next(entry for entry in catalogue_read() if entry["slug"] == "snapchat")


def test_snapchat_purchase_currency_is_upper_case():
    sent = render(partner_slug="snapchat", event="purchase", platform="ios", fields=FIELDS, currency="eur")
    assert sent.json["data"][0]["custom_data"]["currency"] == "EUR"
