"""ironSource Ads certified postbacks against the public descriptions of postback.supersonicads.com/userActivity.

No ironSource-authored reference of this API is public (docs/partners/ironsource.md):
- BRANCH: Branch's public ironSource partner template (BranchMetrics ad-partner-manager record): the paths install,
  appOpen and inAppPurchase and their parameters (src, ifa, idfa, aaid, lat, appId, advertiserId, password,
  dynamicParameter, currency, amount);
- ADJUST: https://help.adjust.com/en/integrated-partners/ironsource (credentials: advertiser ID and password; all
  traffic or attributed only);
- INFERRED: the path of a custom event (/userActivity/<event name>), https, and canClaim (seen only in a public relay
  script) are not in any ironSource or MMP documentation.
"""

from __future__ import annotations

import pytest

from tests.partners.golden import ADID, IDFA, PACKAGES, every_case, render

ADVERTISER_ID = "123456"
PASSWORD = "a1b2c3d4e5f6"
PATHS = {
    "install": "/userActivity/install",
    "session_begin": "/userActivity/appOpen",
    "purchase": "/userActivity/inAppPurchase",
    "level_complete": "/userActivity/level_complete",  # INFERRED
}
ALLOWED = {"src", "ifa", "idfa", "aaid", "lat", "appId", "advertiserId", "password", "dynamicParameter", "canClaim"}

pytestmark = pytest.mark.django_db

cases = every_case(PATHS)


def send(event, platform, tracking_allowed=True, attributed=True):
    return render(
        partner_slug="ironsource",
        event=event,
        platform=platform,
        fields={"advertiser_id": ADVERTISER_ID, "password": PASSWORD},
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


@cases
def test_each_event_is_a_get_on_its_user_activity_path(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    # BRANCH: GET postback.supersonicads.com/userActivity/{install|appOpen|inAppPurchase}, all in the query.
    assert sent.method == "GET"
    assert sent.url.startswith("https://postback.supersonicads.com/")
    assert sent.path == PATHS[event]
    assert sent.body == ""
    parameters = sent.parameters
    assert set(parameters) <= (ALLOWED | {"currency", "amount"} if event == "purchase" else ALLOWED)
    assert all(value != "" for value in parameters.values()), parameters
    # BRANCH: appId = bundle ID of the installed app; ADJUST: advertiser ID and password as credentials.
    assert parameters["appId"] == PACKAGES[platform]
    assert parameters["advertiserId"] == ADVERTISER_ID
    assert parameters["password"] == PASSWORD
    assert parameters["src"]


@cases
def test_device_ids_and_lat_follow_the_users_choice(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    parameters = sent.parameters
    # BRANCH: ifa = IDFA or GAID of the device, idfa = Apple's, aaid = Android's; lat = limit ad tracking status.
    if tracking_allowed:
        device_id = ADID if platform == "android" else IDFA
        assert parameters["ifa"] == device_id
        assert parameters["aaid" if platform == "android" else "idfa"] == device_id
        assert ("idfa" if platform == "android" else "aaid") not in parameters
        assert parameters["lat"] == "0"
    else:
        assert not {"ifa", "idfa", "aaid"} & set(parameters)
        assert IDFA not in sent.url and ADID not in sent.url
        assert parameters["lat"] == "1"


@cases
def test_the_click_id_and_the_claim_flag_say_whether_ironsource_drove_the_install(
    event, platform, tracking_allowed, attributed
):
    parameters = send(event, platform, tracking_allowed, attributed).parameters
    # BRANCH: dynamicParameter = the click id from ironSource's {DynamicParameter}: only on its own installs.
    if attributed:
        assert parameters["dynamicParameter"] == "clk-7f3a"
    else:
        assert "dynamicParameter" not in parameters
    # INFERRED (a public relay script's canClaim=1): 1 when ironSource won the install, 0 for others sent with "All".
    assert parameters["canClaim"] == ("1" if attributed else "0")


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_a_purchase_carries_its_amount_and_currency(platform):
    parameters = send("purchase", platform).parameters
    # BRANCH (inAppPurchase row): currency and amount.
    assert float(parameters["amount"]) == pytest.approx(4.99)
    assert parameters["currency"] == "USD"


@pytest.mark.parametrize("att_status", ["denied", "restricted", "not_determined"])
def test_an_ios_user_who_did_not_authorize_tracking_is_sent_as_limited(att_status):
    # BRANCH: lat = Limit Ad Tracking status; on iOS 14.5+ ATT not authorized is the limited state.
    tracking = {
        "att_status": att_status,
        "limit_ad_tracking": False,
        "consent_ad_user_data": True,
        "consent_ad_personalization": True,
    }
    sent = render(
        partner_slug="ironsource",
        event="level_complete",
        platform="ios",
        fields={"advertiser_id": ADVERTISER_ID, "password": PASSWORD},
        tracking=tracking,
    )
    assert sent.parameters["lat"] == "1"
    assert not {"ifa", "idfa"} & set(sent.parameters)
