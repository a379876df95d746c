"""AppLovin (Axon) certified postbacks against the public descriptions of rt.applovin.com/pix.

No AppLovin-authored reference of this endpoint is public (docs/partners/applovin.md):
- BRANCH: Branch's public AppLovin partner template (BranchMetrics ad-partner-manager page): the parameters,
  AppLovin's Branch page https://help.branch.io/marketer-hub/applovin (its postback rows INSTALL, OPEN, PURCHASE);
- AXON: https://support-preview.axon.ai/en/growth/promoting-your-apps/tracking/appsflyer-tracking (event kinds:
  app open -> landing, revenue -> checkout, other -> postinstall; all installs, organic included, with the
  organic/non-organic indication) and https://support.axon.ai/en/growth/promoting-your-apps/tracking/adjust-tracking
  (the SDK key).
"""

from __future__ import annotations

import pytest

from tests.partners.golden import ADID, IDFA, PACKAGES, every_case, render

SDK_KEY = "q3Xk9ZpL2vR7tYbN5mWc8HdFgJs4AeUo1iKl6QwErTyUiOpAsDfGhJk"
EVENT_KINDS = {
    "install": "install",
    "session_begin": "landing",
    "purchase": "checkout",
    "level_complete": "postinstall",
}
SUB_EVENTS = {
    "install": "install",
    "session_begin": "app_open",
    "purchase": "purchase",
    "level_complete": "level_complete",
}
ALLOWED = {"event", "sub_event", "package_name", "sdk_key", "platform", "idfa", "did", "isclaimable", "dnt"}
ALLOWED_WITH_REVENUE = ALLOWED | {"revenue", "currency_code"}

pytestmark = pytest.mark.django_db

cases = every_case(EVENT_KINDS)


def send(event, platform, tracking_allowed=True, attributed=True):
    return render(
        partner_slug="applovin",
        event=event,
        platform=platform,
        fields={"sdk_key": SDK_KEY},
        tracking_allowed=tracking_allowed,
        attributed=attributed,
    )


@cases
def test_the_request_is_a_pix_get_with_the_documented_parameters(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    # BRANCH: GET rt.applovin.com/pix, every value in the query string; https as the AppLovin SDK's endpoint.
    assert sent.method == "GET"
    assert sent.url.startswith("https://rt.applovin.com/pix?")
    assert sent.body == ""
    parameters = sent.parameters
    # Nothing outside the template's documented parameters, and nothing sent empty.
    assert set(parameters) <= (ALLOWED_WITH_REVENUE if event == "purchase" else ALLOWED)
    assert all(value != "" for value in parameters.values()), parameters
    # AXON: install / landing (app open) / checkout (revenue) / postinstall (anything else); BRANCH: sub_event names it.
    assert parameters["event"] == EVENT_KINDS[event]
    assert parameters["sub_event"] == SUB_EVENTS[event]
    # BRANCH: package_name = package name / bundle id; platform "ios or android"; sdk_key from the account.
    assert parameters["package_name"] == PACKAGES[platform]
    assert parameters["platform"] == platform
    assert parameters["sdk_key"] == SDK_KEY


@cases
def test_isclaimable_tells_applovin_whether_it_drove_the_install(event, platform, tracking_allowed, attributed):
    parameters = send(event, platform, tracking_allowed, attributed).parameters
    # BRANCH: isclaimable "1 or true = user will be claimed by applovin"; AXON: organic installs are sent too,
    # with the organic/non-organic indication.
    assert parameters["isclaimable"] == ("1" if attributed else "0")
    # BRANCH: did = the AppLovin click id passed in the tracking link: only for AppLovin's own installs.
    if attributed:
        assert parameters["did"] == "clk-7f3a"
    else:
        assert "did" not in parameters


@cases
def test_the_advertising_id_and_dnt_follow_the_users_choice(event, platform, tracking_allowed, attributed):
    sent = send(event, platform, tracking_allowed, attributed)
    parameters = sent.parameters
    # BRANCH: idfa = "ios_ifa or google_android_id" (one key for both), dnt "1 or true = user will not be tracked".
    if tracking_allowed:
        assert parameters["idfa"] == (ADID if platform == "android" else IDFA)
        assert parameters["dnt"] == "0"
    else:
        assert "idfa" not in parameters
        assert parameters["dnt"] == "1"
        assert IDFA not in sent.url and ADID not in sent.url


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_a_purchase_is_a_checkout_with_revenue_and_its_currency(platform):
    parameters = send("purchase", platform).parameters
    # BRANCH (PURCHASE row): revenue, currency_code; AXON: the local currency may be sent with its code.
    assert parameters["event"] == "checkout"
    assert float(parameters["revenue"]) == pytest.approx(4.99)
    assert parameters["currency_code"] == "USD"


@pytest.mark.parametrize("att_status", ["denied", "restricted", "not_determined"])
def test_an_ios_user_who_did_not_authorize_tracking_is_not_tracked_even_without_limit_ad_tracking(att_status):
    # BRANCH: dnt "1 or true = user will not be tracked": on iOS, ATT not authorized means exactly that,
    # whatever limit_ad_tracking says; the IDFA is withheld by the policy (docs/macros.md).
    tracking = {
        "att_status": att_status,
        "limit_ad_tracking": False,
        "consent_ad_user_data": True,
        "consent_ad_personalization": True,
    }
    sent = render(
        partner_slug="applovin", event="level_complete", platform="ios", fields={"sdk_key": SDK_KEY}, tracking=tracking
    )
    assert sent.parameters["dnt"] == "1"
    assert "idfa" not in sent.parameters
