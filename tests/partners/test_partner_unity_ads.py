"""Unity Ads: server-to-server install tracking, and post-install events to the secondary conversion endpoint.

Sources: Unity Ads docs, "Server to server install tracking"
(https://unityads.unity3d.com/help/advertising/s2s-install-tracking; Japanese copy:
https://github.com/unity3d-jp/unityads-help-jp/blob/master/s2s-install-tracking.md);
POST_INSTALL: "Passing post-install events to Unity" (https://unityads.unity3d.com/help/advertising/post-install-events;
newer copy: https://docs.unity.com/grow/en-us/acquire/partner-integration/custom/send-postbacks).
"""

from datetime import timedelta

import pytest

from events.models import CustomEvent
from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner, PartnerTemplate
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.partners import golden
from tests.partners.golden import ADID, IDFA, PACKAGES, every_case, occurred_at, render
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

GAME_ID = "1234567"
FIELDS = {"game_id": GAME_ID}
ZEROS = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("attributed", [True, False], ids=["attributed", "organic"])
@pytest.mark.parametrize("tracking_allowed", [True, False], ids=["allowed", "denied"])
@pytest.mark.parametrize("platform", ["android", "ios"])
def test_unity_install_postback_matches_the_s2s_install_tracking_doc(platform, tracking_allowed, attributed):
    sent = render(
        partner_slug="unity_ads",
        event="install",
        platform=platform,
        fields=FIELDS,
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )
    # "Postback URL request": HTTPS GET https://postback.unityads.unity3d.com/games/[GAME_ID]/install?...
    assert (sent.method, sent.url.split("?")[0]) == (
        "GET",
        f"https://postback.unityads.unity3d.com/games/{GAME_ID}/install",
    )
    assert sent.body == ""
    params = sent.parameters
    # "Postback URL parameters": advertisingTrackingId is compulsory for all installs: the IDFA in
    # upper case (iOS), the GAID in lower case (Android); a LAT user's id is all zeros and gamerId
    # identifies them.
    if tracking_allowed:
        assert params["advertisingTrackingId"] == (IDFA.upper() if platform == "ios" else ADID.lower())
    else:
        assert params["advertisingTrackingId"] == ZEROS
        assert IDFA not in sent.url and ADID.lower() not in sent.url.lower()
    # gamerId: Unity's user id, passed by Unity's tracking URL as our click id (docs/partners/unity_ads.md);
    # known only for the installs Unity's click drove.
    if attributed:
        assert params["gamerId"] == "clk-7f3a"
    else:
        assert "gamerId" not in params
    # attributed=1 chargeable, attributed=0 "only marked to the player, and will not be charged" (Blanket
    # Transmission: delivery method "All").
    assert params["attributed"] == ("1" if attributed else "0")
    assert set(params) <= {"advertisingTrackingId", "gamerId", "attributed"}
    assert all(value != "" for value in params.values())


SECONDARY = "https://ads-secondary-conversion.unityads.unity3d.com/v1/events"
UNITY_EVENTS = {"session_begin": "session", "purchase": "purchase", "level_complete": "level_complete"}


@every_case(UNITY_EVENTS)
def test_unity_post_install_events_match_the_secondary_conversion_endpoint(
    event, platform, tracking_allowed, attributed
):
    """POST_INSTALL: "Passing post-install events to Unity", the secondary conversion endpoint."""
    sent = render(
        partner_slug="unity_ads",
        event=event,
        platform=platform,
        fields=FIELDS,
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )
    # Base URL https://ads-secondary-conversion.unityads.unity3d.com/v1/events, a GET whose query carries it all.
    assert (sent.method, sent.url.split("?")[0], sent.body) == ("GET", SECONDARY, "")
    params = sent.parameters
    # User identification: ifa (iOS, upper case) or aid (Android, lower case), and gamer_id when known.
    # The policy withholds the ids of a user who does not allow tracking: then gamer_id alone (LAT users).
    if tracking_allowed:
        expected = {"ifa": IDFA.upper()} if platform == "ios" else {"aid": ADID.lower()}
        assert {key: params[key] for key in ("ifa", "aid") if key in params} == expected
    else:
        assert "ifa" not in params and "aid" not in params
        assert IDFA not in sent.url and ADID.lower() not in sent.url.lower()
    # Ad tracking setting: tracking_enabled={1|0}.
    assert params["tracking_enabled"] == ("1" if tracking_allowed else "0")
    # Game identification: game_id plus platform={ios|android}&bundle_id={bundle id}.
    assert (params["game_id"], params["platform"], params["bundle_id"]) == (GAME_ID, platform, PACKAGES[platform])
    # Event identification: session (retention), purchase with value={amount}&currency (revenue: a decimal), or
    # one of Unity's names (level_complete).
    assert params["event"] == UNITY_EVENTS[event]
    assert "custom_event" not in params
    if event == "purchase":
        assert (params["value"], params["currency"]) == ("4.99", "USD")
        assert float(params["value"]) == 4.99
    else:
        assert "value" not in params and "currency" not in params
    # ts and install_ts: Unix time in seconds or milliseconds (milliseconds, as Unity's examples).
    assert params["ts"] == str(int(occurred_at(event).timestamp() * 1000))
    assert params["install_ts"] == str(int(occurred_at("install").timestamp() * 1000))
    # Original conversion attributed? was_conversion_attributed=1 when Unity drove the install; its campaign id and
    # gamer id (campaign_id, gamer_id) come only from Unity's own click.
    assert params["was_conversion_attributed"] == ("1" if attributed else "0")
    # campaign_id is the tracker's campaign id; golden's tracker has none, so it is left out (never "").
    assert "campaign_id" not in params
    assert params.get("gamer_id") == ("clk-7f3a" if attributed else None)
    assert all(value != "" for value in params.values())
    assert set(params) <= {
        "ifa", "aid", "gamer_id", "tracking_enabled", "campaign_id", "game_id", "platform", "bundle_id",
        "event", "custom_event", "value", "currency", "ts", "install_ts", "was_conversion_attributed",
    }  # fmt: skip


def test_an_event_unity_does_not_name_is_sent_as_a_custom_event_with_its_name(app):
    """POST_INSTALL: `custom` (a custom event), along with custom_event={custom_event_name}."""
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "unity_ads"])
    CustomEvent.objects.create(app=app, name="boss_defeated")
    configuration = factories.make_partner_configuration(app, Partner.objects.get(slug="unity_ads"), **FIELDS)
    postback = factories.make_certified_postback(configuration, event="boss_defeated", delivery_method="all")
    tracking = {"att_status": None, "limit_ad_tracking": False, "consent_ad_user_data": None}
    tracking["consent_ad_personalization"] = None
    golden._ingest(app, "evt-install", "install", golden.T0, {"adid": ADID}, "android", tracking)
    event = golden._ingest(
        app, "evt-boss", "boss_defeated", golden.T0 + timedelta(hours=1), {"adid": ADID}, "android", tracking
    )
    params = golden._read(Delivery.objects.get(event=event, configuration=postback)).parameters
    assert (params["event"], params["custom_event"]) == ("custom", "boss_defeated")
    assert "value" not in params


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        # "Postback URL response format": install true = a chargeable conversion.
        ('{"install":true,"sourceGame":"11007","responseCode":200,"status":"ok"}', Delivery.Status.DELIVERED, ""),
        # install false = received, not a valid conversion: delivered, not chargeable.
        (
            '{"install":false,"responseCode":200,"status":"ok"}',
            Delivery.Status.DELIVERED,
            "not chargeable (install = false)",
        ),
        # "If the status field is not present, any available errors are available in the error field."
        (
            '{"error":"Unknown game","responseCode":200}',
            Delivery.Status.FAILED,
            "HTTP 200, the reply says status is missing: Unknown game",
        ),
    ],
)
def test_unity_reply_is_read_as_documented(app, receiver, allow_private, reply, status, error):
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "unity_ads"])
    partner = Partner.objects.get(slug="unity_ads")
    PartnerTemplate.objects.filter(partner=partner, event="install").update(
        url_template=receiver.url + "/games/{fields.game_id}/install"
    )
    configuration = factories.make_partner_configuration(app, partner, **FIELDS)
    factories.make_certified_postback(configuration, event="install", delivery_method="all")
    receiver.default = Reply(status=200, body=reply)
    tracking = {
        "att_status": None,
        "limit_ad_tracking": False,
        "consent_ad_user_data": True,
        "consent_ad_personalization": True,
    }
    golden._ingest(app, "evt-install", "install", golden.T0, {"adid": ADID}, "android", tracking)
    with clock.frozen(golden.T0 + timedelta(minutes=1)):
        deliveries_send(claim=deliveries_claim(limit=10))
    [received] = receiver.wait_for(1)
    assert received.path == f"/games/{GAME_ID}/install"
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error) == (status, error)
