"""Meta (Facebook): the Graph API App Events endpoint, POST /{app_id}/activities.

Sources:
- https://developers.facebook.com/docs/graph-api/reference/application/activities/ (parameters, access token)
- https://developers.facebook.com/documentation/ads-commerce/marketing-api/app-event-api (events, tracking flags,
  custom_events, the {"success": true} reply)
- https://developers.facebook.com/documentation/ads-commerce/conversions-api/app-events (the 16-slot extinfo array)
"""

import json
import re

import pytest

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner
from postbacks.http import Exchange
from postbacks.models import Attempt
from postbacks.sending import verdict_for
from tests import factories
from tests.partners.golden import ADID, DEVICE_IP, DEVICE_MODELS, IDFA, every_case, occurred_at, render

pytestmark = pytest.mark.django_db

FIELDS = {"app_id": "123456789012345", "access_token": "123456789012345|0123456789abcdef0123456789abcdef"}
EVENTS = ("install", "session_begin", "purchase", "level_complete")
PLATFORMS = ("android", "ios")
EVENT_NAME = {"session_begin": "fb_mobile_activate_app", "purchase": "fb_mobile_purchase"}
EVENT_NAME["level_complete"] = "fb_mobile_level_achieved"
CUSTOM_EVENT_NAME = r"^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$"  # activities reference, custom_events._eventName


def sent(event, platform, *, tracking_allowed=True, attributed=True):
    return render(
        partner_slug="meta",
        event=event,
        platform=platform,
        fields=FIELDS,
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


@every_case()
def test_every_request_is_a_form_post_to_the_apps_activities_edge_with_its_app_token(
    event, platform, tracking_allowed, attributed
):
    request = sent(event, platform, tracking_allowed=tracking_allowed, attributed=attributed)
    # activities reference: POST graph.facebook.com/{version}/{app-id}/activities, parameters as form fields,
    # authenticated by an app access token (access_token).
    assert request.method == "POST"
    assert request.host == "graph.facebook.com"
    assert request.path == f"/v21.0/{FIELDS['app_id']}/activities"
    assert request.header("Content-Type").startswith("application/x-www-form-urlencoded")
    assert request.form["access_token"] == FIELDS["access_token"]
    assert "access_token" not in request.query  # the token stays out of URLs (and logs of URLs)
    # Nothing is sent empty (extinfo's positional slots live inside its JSON text).
    assert all(value != "" for value in request.form.values())
    # app-event-api: extinfo, 16 strings in order, "" as placeholder; slot 0 a2 (Android) / i2 (iOS),
    # 1 package name, 2 short version, 3 long version, 4 OS version (required), 5 device model name.
    extinfo = json.loads(request.form["extinfo"])
    assert len(extinfo) == 16 and all(isinstance(slot, str) for slot in extinfo)
    assert extinfo[0] == {"android": "a2", "ios": "i2"}[platform]
    assert extinfo[1] == {"android": "com.acme.rocket", "ios": "com.acme.rocketios"}[platform]
    assert extinfo[2] == extinfo[3] == "3.2.1"
    assert extinfo[4] == {"android": "14", "ios": "17.4"}[platform]
    assert extinfo[5] == DEVICE_MODELS[platform]
    assert extinfo[6:] == [""] * 10
    # Meta attributes on its own (no attributed flag exists): an organic install is sent the same way.
    assert "attributed" not in request.form


@pytest.mark.parametrize("platform", PLATFORMS)
def test_install_is_mobile_app_install(platform):
    request = sent("install", platform)
    # app-event-api: install = event=MOBILE_APP_INSTALL, no custom_events.
    assert request.form["event"] == "MOBILE_APP_INSTALL"
    assert "custom_events" not in request.form


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("event", ["session_begin", "purchase", "level_complete"])
def test_other_events_are_custom_app_events_as_a_json_array_of_objects(event, platform):
    request = sent(event, platform)
    # app-event-api: event=CUSTOM_APP_EVENTS with custom_events a JSON array of objects (JSON text in one field);
    # _eventName required (pattern of the reference), _logTime an int64 (Unix seconds, as the SDKs log it).
    assert request.form["event"] == "CUSTOM_APP_EVENTS"
    [custom] = json.loads(request.form["custom_events"])
    assert custom["_eventName"] == EVENT_NAME[event]
    assert re.fullmatch(CUSTOM_EVENT_NAME, custom["_eventName"])
    assert custom["_logTime"] == int(occurred_at(event).timestamp())
    assert isinstance(custom["_logTime"], int)
    if event == "purchase":
        # _valueToSum a float, fb_currency ISO 4217, inside the event object (not beside it).
        assert custom["_valueToSum"] == 4.99 and isinstance(custom["_valueToSum"], float)
        assert custom["fb_currency"] == "USD"
        assert "_valueToSum" not in request.form and "fb_currency" not in request.form
    else:
        assert set(custom) == {"_eventName", "_logTime"}


@pytest.mark.parametrize("event", EVENTS)
def test_android_allowed_sends_the_gaid_raw_with_both_tracking_flags_on(event):
    request = sent(event, "android")
    # activities reference: advertiser_id = the GAID as the OS returns it (no hashing); flags 0/1.
    assert request.form["advertiser_id"] == ADID
    assert request.form["advertiser_tracking_enabled"] == "1"
    assert request.form["application_tracking_enabled"] == "1"


@pytest.mark.parametrize("event", EVENTS)
def test_ios_authorized_sends_the_idfa_raw_with_tracking_enabled(event):
    request = sent(event, "ios")
    # advertiser_tracking_enabled: 1 when App Tracking Transparency is authorized (iOS 14.5+).
    assert request.form["advertiser_id"] == IDFA
    assert request.form["advertiser_tracking_enabled"] == "1"
    assert request.form["application_tracking_enabled"] == "1"


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("event", EVENTS)
def test_tracking_denied_sends_no_ad_id_and_both_flags_off(event, platform):
    request = sent(event, platform, tracking_allowed=False)
    # Our policy withholds the ids (ATT denied, limit_ad_tracking); Meta is told tracking is off, never "".
    assert "advertiser_id" not in request.form
    assert IDFA not in request.body and ADID not in request.body and IDFA not in request.url
    assert request.form["advertiser_tracking_enabled"] == "0"
    assert request.form["application_tracking_enabled"] == "0"
    assert request.withheld


def test_the_device_ip_is_not_sent_to_the_graph_endpoint():
    # The activities edge takes no client IP parameter; nothing personal beyond the documented fields.
    assert DEVICE_IP not in sent("purchase", "android").body


def configuration(event="install"):
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "meta"])
    app = factories.make_app(factories.make_account("Meta replies"), platform="android", package="com.acme.rocket")
    config = factories.make_partner_configuration(app, Partner.objects.get(slug="meta"), **FIELDS)
    return factories.make_certified_postback(config, event=event)


@pytest.mark.parametrize(
    ("status", "body", "outcome", "message"),
    [
        (200, '{"success": true}', Attempt.Outcome.DELIVERED, None),
        (
            200,
            '{"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}}',
            Attempt.Outcome.FAILED,
            "(#100) Invalid parameter",
        ),
        (200, '{"success": false}', Attempt.Outcome.FAILED, "Meta replied success: false"),
        (400, '{"error": {"message": "Invalid OAuth access token.", "code": 190}}', Attempt.Outcome.FAILED, None),
        (503, "", Attempt.Outcome.RETRY, None),
    ],
)
def test_the_reply_is_read_as_the_graph_api_documents_it(status, body, outcome, message):
    # app-event-api: success is 200 {"success": true}; Graph errors carry an error object.
    verdict = verdict_for(Exchange(duration_ms=5, status=status, body=body), configuration=configuration())
    assert verdict.outcome == outcome
    if message:
        assert message in verdict.message


def test_a_configuration_without_its_access_token_sends_none_rather_than_an_empty_one():
    # The token is optional in the configuration (configurations made before it existed stay valid);
    # Meta refuses such an event, and the delivery log shows Meta's error, rather than sending access_token="".
    request = render(partner_slug="meta", event="install", platform="android", fields={"app_id": FIELDS["app_id"]})
    assert "access_token" not in request.form
