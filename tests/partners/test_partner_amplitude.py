"""Amplitude: HTTP V2 API.

Sources:
- https://amplitude.com/docs/apis/analytics/http-v2 (endpoint, body, event keys, upload limits, responses)
- https://amplitude.com/docs/apis/analytics/http-api-batching-retries (insert_id, 400/413 vs 429 and 5xx)
"""

import json
from datetime import timedelta

import pytest

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner, PartnerTemplate
from postbacks.models import Delivery
from postbacks.rendering import render_postback, sample_values
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.partners import golden
from tests.partners.golden import ADID, DEVICE_IP, IDFA, IDFV, T0, every_case, occurred_at, render
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

API_KEY = "0123456789abcdef0123456789abcdef"
FIELDS = {"api_key": API_KEY}
EVENT_TYPE = {"install": "install", "session_begin": "session_start", "purchase": "purchase"}
EVENT_ID = {"install": "evt-install", "session_begin": "evt-session"}


def _nothing_empty(value, where="body"):
    if isinstance(value, dict):
        assert value, f"{where} is an empty object"
        for key, item in value.items():
            _nothing_empty(item, f"{where}.{key}")
    elif isinstance(value, list):
        assert value, f"{where} is an empty array"
        for index, item in enumerate(value):
            _nothing_empty(item, f"{where}[{index}]")
    else:
        assert value not in ("", None), f"{where} is empty"


# Amplitude is an analytics partner, never a network a tracker drives: no attributed/organic axis, and
# Amplitude's API has no attributed flag.
@every_case(attributed=False)
def test_amplitude_postback_matches_the_http_v2_api(event, platform, tracking_allowed):
    options = {"platform": platform, "fields": FIELDS, "tracking_allowed": tracking_allowed, "attributed": False}
    sent = render(partner_slug="amplitude", event=event, **options)
    # http-v2: POST https://api2.amplitude.com/2/httpapi, Content-Type application/json,
    # {"api_key": ..., "events": [...]}: the key is in the body, there is no auth header.
    assert (sent.method, sent.url) == ("POST", "https://api2.amplitude.com/2/httpapi")
    assert sent.header("Content-Type").startswith("application/json")
    assert sent.header("Authorization") is None
    assert set(sent.json) == {"api_key", "events"}
    assert sent.json["api_key"] == API_KEY
    [amp] = sent.json["events"]
    # http-v2 event keys: event_type (required), time in Unix milliseconds (integer), insert_id for dedup.
    assert amp["event_type"] == EVENT_TYPE.get(event, event)
    at = occurred_at(event)
    assert amp["time"] == int(at.timestamp() * 1000) and isinstance(amp["time"], int)
    assert amp["insert_id"] == EVENT_ID.get(event, f"evt-{event}")
    if event == "session_begin":  # session_id: the session's start in milliseconds
        assert amp["session_id"] == amp["time"]
    else:
        assert "session_id" not in amp
    # http-v2: device_id or user_id required, at least 5 characters (min_id_length).
    # iOS: the IDFV (Amplitude's own iOS default); Android: the GAID, withheld when tracking is limited,
    # and then there is no id at all (docs/partners/amplitude.md: Amplitude refuses it with a 400).
    if platform == "ios":
        assert amp["device_id"] == IDFV and amp["idfv"] == IDFV
    elif tracking_allowed:
        assert amp["device_id"] == ADID
    else:
        assert "device_id" not in amp
    assert len(amp.get("device_id", "xxxxx")) >= 5
    # http-v2: idfa (iOS) and adid (Android, the GAID) as the raw ids; withheld by the tracking policy.
    if tracking_allowed and platform == "ios":
        assert amp["idfa"] == IDFA
    elif tracking_allowed:
        assert amp["adid"] == ADID
    else:
        assert "idfa" not in amp and "adid" not in amp
        assert IDFA not in sent.body and (platform == "ios" or ADID not in sent.body)
    assert amp["platform"] == {"android": "Android", "ios": "iOS"}[platform]
    assert amp["os_version"] == ("14" if platform == "android" else "17.4")
    assert amp["app_version"] == "3.2.1"
    assert (amp["ip"], amp["country"]) == (DEVICE_IP, "US")
    # http-v2 revenue keys: price and revenue as numbers, with the currency, for purchases only.
    if event == "purchase":
        assert (amp["price"], amp["revenue"], amp["currency"]) == (4.99, 4.99, "USD")
    else:
        assert not {"price", "revenue", "currency"} & set(amp)
    # An analytics partner gets attribution only with "supply network data" (off here): none is sent.
    assert "event_properties" not in amp
    _nothing_empty(sent.json)


@pytest.mark.parametrize(
    ("status", "outcome", "error"),
    [
        (200, Delivery.Status.DELIVERED, ""),
        # batching-retries: a 400 (invalid request) or 413 (payload too large) is not fixed by resending.
        (400, Delivery.Status.FAILED, "HTTP 400: the receiver refused it, not retried"),
        (413, Delivery.Status.FAILED, "HTTP 413: the receiver refused it, not retried"),
        # 429 (throttled) and 5xx are retried with backoff.
        (429, Delivery.Status.SCHEDULED, "HTTP 429"),
        (503, Delivery.Status.SCHEDULED, "HTTP 503"),
    ],
)
def test_amplitude_reply_is_read_as_documented(app, receiver, allow_private, status, outcome, error):
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "amplitude"])
    partner = Partner.objects.get(slug="amplitude")
    PartnerTemplate.objects.filter(partner=partner, event="install").update(url_template=receiver.url + "/2/httpapi")
    configuration = factories.make_partner_configuration(app, partner, **FIELDS)
    factories.make_certified_postback(configuration, event="install", delivery_method="all", retry_attempts=3)
    receiver.default = Reply(status=status, body=f'{{"code": {status}}}')
    tracking = {
        "att_status": None,
        "limit_ad_tracking": False,
        "consent_ad_user_data": True,
        "consent_ad_personalization": True,
    }
    golden._ingest(app, "evt-install", "install", T0, {"adid": ADID}, "android", tracking)
    with clock.frozen(T0 + timedelta(minutes=1)):
        deliveries_send(claim=deliveries_claim(limit=10))
    [received] = receiver.wait_for(1)
    assert received.path == "/2/httpapi"
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error) == (outcome, error)


def test_amplitude_attribution_goes_in_event_properties(app):
    # http-v2: free properties belong in event_properties (the attribution values reach an analytics partner
    # only when the postback supplies network data, docs/macros.md; the values are given here).
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "amplitude"])
    configuration = factories.make_partner_configuration(app, Partner.objects.get(slug="amplitude"), **FIELDS)
    postback = factories.make_certified_postback(configuration, event="install", supply_network_data=True)
    values = {**sample_values(configuration=postback), "network_name": "Snapchat", "campaign_name": "Autumn"}
    [amp] = json.loads(render_postback(configuration=postback, values=values).body)["events"]
    assert amp["event_properties"]["network"] == "Snapchat"
    assert amp["event_properties"]["campaign"] == "Autumn"
