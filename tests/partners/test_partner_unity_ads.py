"""Unity Ads: server-to-server install tracking. Unity documents the install postback only.

Source: Unity Ads docs, "Server to server install tracking"
(https://unityads.unity3d.com/help/advertising/s2s-install-tracking; Japanese copy:
https://github.com/unity3d-jp/unityads-help-jp/blob/master/s2s-install-tracking.md).
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner, PartnerTemplate
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.partners import golden
from tests.partners.golden import ADID, IDFA, render
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


@pytest.mark.parametrize("event", ["session_begin", "purchase", "level_complete"])
def test_unity_documents_installs_only_so_no_other_postback_can_be_configured(event, app):
    # The doc describes the install postback only; no endpoint is invented for other events.
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] == "unity_ads"])
    partner = Partner.objects.get(slug="unity_ads")
    assert list(partner.templates.values_list("event", flat=True)) == ["install"]
    configuration = factories.make_partner_configuration(app, partner, **FIELDS)
    with pytest.raises(ValidationError):
        factories.make_certified_postback(configuration, event=event)


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
