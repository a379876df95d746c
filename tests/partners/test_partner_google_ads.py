"""Google Ads: the App Conversion Tracking and Remarketing API, pagead/conversion/app/1.0.

Sources:
- https://developers.google.com/app-conversion-tracking/api/request-response-specs (HTTPS POST to
  www.googleadservices.com; required dev_token, link_id, app_event_type, rdid, id_type, lat, app_version,
  os_version, sdk_version, timestamp, and the User-Agent and X-Forwarded-For headers; the reply's errors
  and attributed)
- https://github.com/google-marketing-solutions/gps_building_blocks/blob/7f75903024829ffcc454799c46a3752a980810d8/cc4d/hooks/ads_uac_hook.py
  (Google's own client: parameters in the query string, app_event_type and id_type values, rdid a raw UUID,
  lat 0/1, app_event_name only with custom)
"""

import re

import pytest

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner
from postbacks.http import Exchange
from postbacks.models import Attempt
from postbacks.sending import verdict_for
from tests import factories
from tests.partners.golden import ADID, DEVICE_IP, IDFA, USER_AGENTS, every_case, occurred_at, render

pytestmark = pytest.mark.django_db

FIELDS = {"link_id": "31FF8D67E5BB5DD5029DCC2734C2F884", "dev_token": "Z_eErE4DkvcKjDM1OVE4c4"}
EVENTS = ("install", "session_begin", "purchase", "level_complete")
PLATFORMS = ("android", "ios")
EVENT_TYPES = {"install": "first_open", "session_begin": "session_start", "purchase": "in_app_purchase"}
EVENT_TYPES["level_complete"] = "custom"
REQUIRED = {"dev_token", "link_id", "app_event_type", "lat", "app_version", "os_version", "sdk_version", "timestamp"}
# ads_uac_hook.py checks rdid against a version-4 UUID; golden's ADID is Google's documentation example GAID
# (38400000-8cf0-11bd-…, version 1), so the shape is checked here: a UUID, as the device gave it, unhashed.
RDID = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$", re.IGNORECASE)


def sent(event, platform, *, tracking_allowed=True, attributed=True):
    return render(
        partner_slug="google_ads",
        event=event,
        platform=platform,
        fields=FIELDS,
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


@every_case()
def test_every_request_is_a_post_with_the_required_parameters_in_the_query_and_the_device_headers(
    event, platform, tracking_allowed, attributed
):
    request = sent(event, platform, tracking_allowed=tracking_allowed, attributed=attributed)
    # request-response-specs: HTTPS POST to www.googleadservices.com/pagead/conversion/app/1.0;
    # ads_uac_hook.py: every parameter URL-encoded in the query string.
    assert request.method == "POST"
    assert request.url.startswith("https://www.googleadservices.com/pagead/conversion/app/1.0?")
    assert set(request.query) >= REQUIRED
    assert all(value != "" for value in request.query.values())
    assert request.query["dev_token"] == FIELDS["dev_token"] and request.query["link_id"] == FIELDS["link_id"]
    assert request.query["app_event_type"] == EVENT_TYPES[event]
    assert request.query["app_version"] == "3.2.1"
    assert request.query["os_version"] == {"android": "14", "ios": "17.4"}[platform]
    # sdk_version: "If no SDK is used, it should mirror the app version" (the events reach us from the app).
    assert request.query["sdk_version"] == "3.2.1"
    # timestamp: seconds since the epoch.
    assert request.query["timestamp"] == str(int(occurred_at(event).timestamp()))
    # request-response-specs, App User-Agent and X-Forwarded-For: the device's own, both required.
    assert request.header("User-Agent") == USER_AGENTS[platform]
    assert request.header("X-Forwarded-For") == DEVICE_IP
    # lat: 0 or 1 (ads_uac_hook.py).
    assert request.query["lat"] == ("0" if tracking_allowed else "1")
    # Google attributes on its own and says so in its reply; nothing else tells it.
    assert "attributed" not in request.query


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("event", EVENTS)
def test_the_ad_id_is_sent_raw_with_googles_id_type(event, platform):
    request = sent(event, platform)
    # ads_uac_hook.py: rdid a raw RFC 4122 UUID (GAID or IDFA, not hashed); id_type advertisingid / idfa.
    assert request.query["rdid"] == {"android": ADID, "ios": IDFA}[platform]
    assert RDID.fullmatch(request.query["rdid"])
    assert request.query["id_type"] == {"android": "advertisingid", "ios": "idfa"}[platform]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("event", EVENTS)
def test_tracking_denied_sends_no_ad_id_and_lat_1(event, platform):
    request = sent(event, platform, tracking_allowed=False)
    assert "rdid" not in request.query
    assert ADID not in request.url and IDFA not in request.url
    assert request.query["lat"] == "1"
    assert request.withheld


@pytest.mark.parametrize("platform", PLATFORMS)
def test_purchase_is_in_app_purchase_with_value_and_currency(platform):
    request = sent("purchase", platform)
    # ads_uac_hook.py AppEventType.IN_APP_PURCHASE; value (decimal) and currency_code (ISO 4217).
    assert request.query["app_event_type"] == "in_app_purchase"
    assert "app_event_name" not in request.query  # only with custom
    assert float(request.query["value"]) == 4.99
    assert request.query["currency_code"] == "USD"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_custom_event_is_custom_with_its_name(platform):
    request = sent("level_complete", platform)
    assert request.query["app_event_type"] == "custom"
    assert request.query["app_event_name"] == "level_complete"
    assert "value" not in request.query and "currency_code" not in request.query


@pytest.mark.parametrize("event", ["install", "session_begin"])
def test_install_and_session_carry_no_event_name_or_value(event):
    request = sent(event, "android")
    assert not {"app_event_name", "value", "currency_code"} & set(request.query)


def configuration():
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "google_ads"])
    app = factories.make_app(factories.make_account("Google replies"), platform="android", package="com.acme.rocket")
    config = factories.make_partner_configuration(app, Partner.objects.get(slug="google_ads"), **FIELDS)
    return factories.make_certified_postback(config, event="install")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "message"),
    [
        (200, '{"ad_events": [{"ad_event_id": "Q2o", "campaign_id": 1}], "errors": [], "attributed": true}', "ok", ""),
        (200, '{"ad_events": [], "errors": [], "attributed": false}', "ok", "not attribute"),
        (200, '{"errors": ["Invalid link_id"], "attributed": false}', Attempt.Outcome.FAILED, "Invalid link_id"),
        (400, "", Attempt.Outcome.FAILED, ""),
        (503, "", Attempt.Outcome.RETRY, ""),
    ],
)
def test_the_reply_is_read_as_documented(status, body, outcome, message):
    # request-response-specs: the reply says whether the conversion was attributed and lists errors.
    verdict = verdict_for(Exchange(duration_ms=5, status=status, body=body), configuration=configuration())
    assert verdict.outcome == (Attempt.Outcome.DELIVERED if outcome == "ok" else outcome)
    assert message in verdict.message
