"""Liftoff certified postbacks against Liftoff's Analytics S2S API.

Why the direct v2 API and not the per-MMP path (docs/partners/liftoff.md): it is the one Liftoff documents for a
server that sends its own events (LIFTOFF below); the /<mmp>/v1/events paths are provisioned by Liftoff for one
measurement partner each (e.g. Branch's) and are documented only in that partner's template.
- LIFTOFF: https://docs.liftoff.io/advertiser/direct/s2s (GET analytics.liftoff.io/v2/events, Authorization: Bearer
  API key, required liftoff_app_id, client_ip, event_name ("install" for installs), event_timestamp in milliseconds,
  platform "android"/"ios", language (ISO 639-1, 2 letters), device_model (utsname.machine, e.g. iPhone12,5); at
  least one of user_id, idfv, device ids);
- MATCHING: https://docs.liftoff.io/advertiser/direct/liftoff-s2s-integration (third_party_tracking_token, gaid, idfa,
  is_attributed);
- BRANCH: https://help.branch.io/marketer-hub/liftoff (bundle_id, app_store_id, is_attributed "a boolean or 0/1
  indicating whether Liftoff drove the click");
- INFERRED: revenue and currency_code (Liftoff's legacy v1 tracker), app_open for a session.
"""

from __future__ import annotations

import pytest

from tests.partners.golden import (
    ADID,
    DEVICE_IP,
    DEVICE_MODELS,
    IDFA,
    IDFV,
    PACKAGES,
    every_case,
    occurred_at,
    render,
)

APP_ID = "a1b2c3d4e5"
API_KEY = "lft_9Zx8Yw7Vu6Ts5Rq4Pp3On2Mm1Lk0Jj"
EVENT_NAMES = {
    "install": "install",
    "session_begin": "app_open",
    "purchase": "purchase",
    "level_complete": "level_complete",
}
EVENT_TIMES = {event: occurred_at(event) for event in ("install", "session_begin", "purchase")}
EVENT_TIMES["level_complete"] = EVENT_TIMES["purchase"]
ALLOWED = {
    "liftoff_app_id", "client_ip", "event_name", "event_timestamp", "platform", "bundle_id", "app_store_id",
    "user_id", "idfv", "idfa", "gaid", "third_party_tracking_token", "is_attributed", "os_version", "app_version",
    "device_model", "language",
}  # fmt: skip

pytestmark = pytest.mark.django_db

cases = every_case(EVENT_NAMES)


def send(event, platform, tracking_allowed=True, attributed=True, **fields):
    return render(
        partner_slug="liftoff",
        event=event,
        platform=platform,
        fields={"liftoff_app_id": APP_ID, "api_key": API_KEY, **fields},
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


@cases
def test_the_request_is_the_documented_v2_events_get(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    # LIFTOFF: GET https://analytics.liftoff.io/v2/events?liftoff_app_id=…, the API key as a Bearer token.
    assert sent.method == "GET"
    assert sent.url.startswith("https://analytics.liftoff.io/v2/events?")
    assert sent.body == ""
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    assert API_KEY not in sent.url
    parameters = sent.parameters
    assert set(parameters) <= (ALLOWED | {"revenue", "currency_code"} if event == "purchase" else ALLOWED)
    assert all(value != "" for value in parameters.values()), parameters
    # LIFTOFF: the required parameters of every postback.
    assert parameters["liftoff_app_id"] == APP_ID
    assert parameters["client_ip"] == DEVICE_IP
    assert parameters["event_name"] == EVENT_NAMES[event]
    assert parameters["platform"] == platform
    # LIFTOFF: language, ISO 639-1 (2 letters): the event's en-US; device_model, as the OS reports it.
    assert parameters["language"] == "en"
    assert parameters["device_model"] == DEVICE_MODELS[platform]
    # LIFTOFF: event_timestamp in milliseconds since the epoch, e.g. "1600297099000".
    assert parameters["event_timestamp"] == str(int(EVENT_TIMES[event].timestamp()) * 1000)
    # BRANCH: bundle_id = the package name or bundle id.
    assert parameters["bundle_id"] == PACKAGES[platform]


@cases
def test_device_ids_follow_the_users_choice_and_one_id_is_always_there(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    parameters = sent.parameters
    # MATCHING: gaid, idfa; LIFTOFF: idfv on iOS (not an advertising id: sent whatever ATT says).
    if tracking_allowed:
        assert parameters["gaid" if platform == "android" else "idfa"] == (ADID if platform == "android" else IDFA)
    else:
        assert "gaid" not in parameters and "idfa" not in parameters
        assert IDFA not in sent.url and ADID not in sent.url
    if platform == "ios":
        assert parameters["idfv"] == IDFV
    # LIFTOFF: at least one identifier is required; a denied Android device has only its click token, if any.
    identifiers = {"user_id", "idfv", "gaid", "idfa", "third_party_tracking_token"} & set(parameters)
    assert identifiers or (platform == "android" and not tracking_allowed and not attributed)


@cases
def test_is_attributed_tells_liftoff_whether_it_drove_the_install(event, platform, tracking_allowed, attributed):
    parameters = send(event, platform, tracking_allowed, attributed).parameters
    # BRANCH / MATCHING: is_attributed (0/1) and the Liftoff click token, third_party_tracking_token.
    assert parameters["is_attributed"] == ("1" if attributed else "0")
    if attributed:
        assert parameters["third_party_tracking_token"] == "clk-7f3a"
    else:
        assert "third_party_tracking_token" not in parameters


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_a_purchase_carries_its_revenue_and_currency(platform):
    parameters = send("purchase", platform).parameters
    # INFERRED (legacy v1 tracker): revenue and currency_code.
    assert parameters["event_name"] == "purchase"
    assert float(parameters["revenue"]) == pytest.approx(4.99)
    assert parameters["currency_code"] == "USD"


@pytest.mark.parametrize("app_store_id", ["1234567890", None])
def test_the_app_store_id_is_sent_when_the_operator_gives_it(app_store_id):
    # BRANCH: app_store_id, the numeric App Store id (both it and bundle_id are welcome; it is optional).
    fields = {"app_store_id": app_store_id} if app_store_id else {}
    assert send("install", "ios", **fields).parameters.get("app_store_id") == app_store_id
