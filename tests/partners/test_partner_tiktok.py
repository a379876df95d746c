"""TikTok: Events API 2.0 for app events, POST /open_api/v1.3/event/track/.

Sources (TikTok's own parameter pages are not public without a login; TikTok maintains the Segment
destination, whose code is the public implementation read here):
- https://www.twilio.com/docs/segment/connections/destinations/catalog/tiktok-app-events ("TikTok maintains
  this integration")
- https://github.com/segmentio/action-destinations/tree/main/packages/destination-actions/src/destinations/tiktok-app-events
  (index.ts: the Access-Token header; reportAppEvent/utils.ts: the endpoint and body; formatter.ts: the IDFA
  trimmed, lower-cased and SHA-256 hashed, the GAID trimmed and SHA-256 hashed; constants.ts: att_status values)
"""

import hashlib

import pytest

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner
from postbacks.http import Exchange
from postbacks.models import Attempt
from postbacks.sending import verdict_for
from tests import factories
from tests.partners.golden import (
    ADID,
    DEVICE_IP,
    IDFA,
    IDFV,
    PACKAGES,
    USER_AGENTS,
    every_case,
    occurred_at,
    render,
)

pytestmark = pytest.mark.django_db

FIELDS = {"tiktok_app_id": "7654321098765432109", "access_token": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"}
APP_STORE_ID = "1234567890"
EVENTS = ("install", "session_begin", "purchase", "level_complete")
PLATFORMS = ("android", "ios")
EVENT_NAMES = {"install": "InstallApp", "session_begin": "LaunchAPP", "purchase": "Purchase"}
EVENT_NAMES["level_complete"] = "AchieveLevel"
ATT_STATUSES = {"AUTHORIZED", "DENIED", "NOT_DETERMINED", "RESTRICTED", "NOT_APPLICABLE"}  # constants.ts
HEX64 = set("0123456789abcdef")


def sent(event, platform, *, tracking_allowed=True, attributed=True, app_store_id=True):
    fields = {**FIELDS, "app_store_id": APP_STORE_ID} if platform == "ios" and app_store_id else FIELDS
    return render(
        partner_slug="tiktok",
        event=event,
        platform=platform,
        fields=fields,
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


def values(document):
    if isinstance(document, dict):
        for value in document.values():
            yield from values(value)
    elif isinstance(document, list):
        for value in document:
            yield from values(value)
    else:
        yield document


@every_case()
def test_every_request_is_one_app_event_in_data_with_the_token_in_its_header(
    event, platform, tracking_allowed, attributed
):
    request = sent(event, platform, tracking_allowed=tracking_allowed, attributed=attributed)
    # reportAppEvent/utils.ts: POST business-api.tiktok.com/open_api/v1.3/event/track/, JSON;
    # index.ts: the token in the Access-Token header, never in the URL.
    assert request.method == "POST"
    assert request.url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert request.header("Access-Token") == FIELDS["access_token"]
    assert FIELDS["access_token"] not in request.body
    body = request.json
    assert body["event_source"] == "app"
    assert body["event_source_id"] == FIELDS["tiktok_app_id"]
    [data] = body["data"]
    assert data["event"] == EVENT_NAMES[event]
    # event_time: an integer, Unix seconds.
    assert data["event_time"] == int(occurred_at(event).timestamp()) and isinstance(data["event_time"], int)
    assert data["event_id"].startswith("evt-")
    user = data["user"]
    assert user["ip"] == DEVICE_IP and user["user_agent"] == USER_AGENTS[platform]
    # app.app_id: the App Store numeric id on iOS, the package name on Android (common_fields.ts).
    assert data["app"] == {
        "app_id": {"android": PACKAGES["android"], "ios": APP_STORE_ID}[platform],
        "app_name": f"Rocket {platform}",
        "app_version": "3.2.1",
    }
    # ad.attributed (bool, "Whether the event is attributed"): whether TikTok won the install, also on "All".
    assert data["ad"]["attributed"] is attributed
    if attributed:
        assert data["ad"]["callback"] == "clk-7f3a"  # the click id of TikTok's click
        # campaign_id is the tracker's campaign id; golden's tracker has none, so it is left out (never "").
        assert "campaign_id" not in data["ad"]
    else:
        assert "callback" not in data["ad"] and "campaign_id" not in data["ad"]
    # limited_data_use: a boolean; true when the user limits ad tracking or refused ad user data.
    assert data["limited_data_use"] is (not tracking_allowed)
    # Nothing is sent empty.
    assert all(value not in ("", None) for value in values(body))


@pytest.mark.parametrize("event", EVENTS)
def test_android_sends_the_gaid_hashed_and_att_status_not_applicable(event):
    user = sent(event, "android").json["data"][0]["user"]
    # formatter.ts formatAdvertisingId(gaid, lowerCase=false): SHA-256 hex of the trimmed GAID.
    assert user["gaid"] == hashlib.sha256(ADID.encode()).hexdigest()
    assert "idfa" not in user and "idfv" not in user
    # common_fields.ts: att_status "should be set to 'Not Applicable' if … the device is running Android".
    assert user["att_status"] == "NOT_APPLICABLE"


@pytest.mark.parametrize("event", EVENTS)
def test_ios_authorized_sends_the_idfa_lower_cased_and_hashed_the_idfv_raw(event):
    user = sent(event, "ios").json["data"][0]["user"]
    # formatter.ts formatAdvertisingId(idfa, lowerCase=true): SHA-256 hex of the trimmed, lower-cased IDFA.
    assert user["idfa"] == hashlib.sha256(IDFA.lower().encode()).hexdigest()
    assert set(user["idfa"]) <= HEX64 and len(user["idfa"]) == 64
    assert user["idfv"] == IDFV
    assert "gaid" not in user
    assert user["att_status"] == "AUTHORIZED"


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("event", EVENTS)
def test_tracking_denied_sends_no_ad_id_in_any_form(event, platform):
    request = sent(event, platform, tracking_allowed=False)
    user = request.json["data"][0]["user"]
    assert "idfa" not in user and "gaid" not in user
    for ad_id in (IDFA, ADID):
        assert ad_id.lower() not in request.body.lower()
        assert hashlib.sha256(ad_id.encode()).hexdigest() not in request.body
        assert hashlib.sha256(ad_id.lower().encode()).hexdigest() not in request.body
    assert user["att_status"] in ATT_STATUSES
    assert user["att_status"] == {"android": "NOT_APPLICABLE", "ios": "DENIED"}[platform]
    assert request.json["data"][0]["limited_data_use"] is True
    assert request.withheld


@pytest.mark.parametrize("platform", PLATFORMS)
def test_purchase_carries_value_as_a_number_and_currency(platform):
    properties = sent("purchase", platform).json["data"][0]["properties"]
    # utils.ts getProps: properties.value (number), properties.currency (ISO 4217).
    assert properties == {"value": 4.99, "currency": "USD"}


@pytest.mark.parametrize("event", ["install", "session_begin", "level_complete"])
def test_events_without_revenue_carry_no_properties(event):
    assert "properties" not in sent(event, "android").json["data"][0]


def test_an_ios_app_without_its_app_store_id_falls_back_to_the_bundle_id():
    data = sent("install", "ios", app_store_id=False).json["data"][0]
    assert data["app"]["app_id"] == PACKAGES["ios"]


def configuration():
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "tiktok"])
    app = factories.make_app(factories.make_account("TikTok replies"), platform="android", package="com.acme.rocket")
    config = factories.make_partner_configuration(app, Partner.objects.get(slug="tiktok"), **FIELDS)
    return factories.make_certified_postback(config, event="install")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "message"),
    [
        (200, '{"code": 0, "message": "OK", "request_id": "2026", "data": {}}', Attempt.Outcome.DELIVERED, ""),
        (200, '{"code": 40002, "message": "Parameter error", "data": {}}', Attempt.Outcome.FAILED, "Parameter error"),
        (200, '{"code": 40105, "message": "Access token is incorrect"}', Attempt.Outcome.FAILED, "Access token"),
        (503, "", Attempt.Outcome.RETRY, ""),
    ],
)
def test_the_reply_is_read_by_its_code(status, body, outcome, message):
    # Business API envelope: success is code 0; an error is a 200 with another code and a message.
    verdict = verdict_for(Exchange(duration_ms=5, status=status, body=body), configuration=configuration())
    assert verdict.outcome == outcome
    assert message in verdict.message
