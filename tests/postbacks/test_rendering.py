import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from partners.models import PartnerTemplate
from postbacks.models import PostbackConfiguration
from postbacks.rendering import RenderError, render_postback, sample_values
from tests import factories

pytestmark = pytest.mark.django_db

EVENT = {
    "event_name": "install",
    "adid": "a&b=c#d",
    "campaign_name": "Autumn & Winter",
    "network_id": "acme_ads",
    "network_name": "Acme Ads",
    "revenue": "",
}


def test_custom_fills_placeholders_and_appends_selected_macros_encoded(app):
    postback = factories.make_custom_postback(
        app,
        url="https://hooks.acme.test/in/{event_name}?src=pb#frag",
        macros=["adid", "campaign_name", "revenue"],
        supply_network_data=True,
    )
    request = render_postback(configuration=postback, values=EVENT)
    parts = urlsplit(request.url)
    assert request.method == "GET"
    assert parts.path == "/in/install"
    assert parse_qs(parts.query, keep_blank_values=True) == {
        "src": ["pb"],
        "adid": ["a&b=c#d"],  # a value cannot add parameters or cut the URL
        "campaign_name": ["Autumn & Winter"],
        "revenue": [""],  # a macro with no value is empty
    }
    assert parts.fragment == ""


def test_custom_placeholder_values_cannot_escape_their_path_segment(app):
    postback = factories.make_custom_postback(app, url="https://hooks.acme.test/{adid}/x")
    assert render_postback(configuration=postback, values=EVENT).url == "https://hooks.acme.test/a%26b%3Dc%23d/x"


def test_custom_without_supply_network_data_sends_no_attribution(app):
    postback = factories.make_custom_postback(app, macros=["adid", "network_name", "campaign_name"])
    query = parse_qs(urlsplit(render_postback(configuration=postback, values=EVENT).url).query, keep_blank_values=True)
    assert query == {"adid": ["a&b=c#d"], "network_name": [""], "campaign_name": [""]}


def test_custom_post_carries_the_macros_as_json_too(app):
    postback = factories.make_custom_postback(app, macros=["adid"], method="POST")
    request = render_postback(configuration=postback, values=EVENT)
    assert request.method == "POST"
    assert json.loads(request.body) == {"adid": "a&b=c#d"}
    assert request.headers["Content-Type"] == "application/json"


def test_certified_uses_template_fields_and_partner_event_names(app, partner):
    config = factories.make_partner_configuration(app, partner, app_id="98765", token="s3cret")
    postback = factories.make_certified_postback(config)
    request = render_postback(configuration=postback, values=EVENT)
    parts = urlsplit(request.url)
    assert (request.method, parts.path) == ("GET", "/98765/install")
    assert parse_qs(parts.query) == {
        "gaid": ["a&b=c#d"],
        "evt": ["APP_INSTALL"],
        "camp": ["Autumn & Winter"],
        "t": ["s3cret"],
    }


def test_certified_json_body_and_per_postback_event_name(app, partner):
    config = factories.make_partner_configuration(app, partner)
    postback = factories.make_certified_postback(config, event="purchase", delivery_method="all")
    values = {**EVENT, "event_name": "purchase", "revenue": "4.99", "click_id": "clk-1"}
    request = render_postback(configuration=postback, values=values)
    assert request.url == "https://postback.acme.test/12345/events"
    assert json.loads(request.body) == {"event": "PURCHASE", "revenue": "4.99", "click": "clk-1"}
    postback.partner_event_name = "fb_mobile_purchase"
    assert json.loads(render_postback(configuration=postback, values=values).body)["event"] == "fb_mobile_purchase"


def test_certified_for_another_networks_install_sends_no_attribution(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    values = {**EVENT, "network_id": "someone_else"}
    query = parse_qs(urlsplit(render_postback(configuration=postback, values=values).url).query, keep_blank_values=True)
    assert query["camp"] == [""]
    assert query["gaid"] == ["a&b=c#d"]


def test_changing_the_template_changes_what_configured_postbacks_send(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    PartnerTemplate.objects.filter(partner=partner, event="install").update(
        url_template="https://v2.acme.test/{fields.app_id}", parameters={"device": "{adid}"}
    )
    request = render_postback(configuration=postback, values=EVENT)
    assert request.url == "https://v2.acme.test/12345?device=a%26b%3Dc%23d"


def test_sample_values_describe_the_app_and_partner(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    values = sample_values(configuration=postback)
    assert values["app_id"] == app.package_name
    assert values["network_id"] == partner.slug
    assert values["event_name"] == "install"


SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"destination_url": "http://{event_value}/x"}, "{event_value} stands in the scheme, host or port"),
        ({"signing_secret": SECRET}, "a GET has none"),
        ({"signing_secret": SECRET, "method": "POST", "destination_url": "https://a.test/{adid}"}, "take {adid} out"),
    ],
)
def test_a_configuration_saved_before_the_rules_renders_nothing(app, changes, message):
    """One stored without validation (e.g. before these rules): no request is built from it."""
    postback = factories.make_custom_postback(app, macros=["adid"])
    PostbackConfiguration.objects.filter(pk=postback.pk).update(**changes)
    postback.refresh_from_db()
    with pytest.raises(RenderError, match=re.escape(message)):
        render_postback(configuration=postback, values={**EVENT, "event_value": "169.254.169.254"})


def test_a_certified_template_with_a_placeholder_in_the_host_renders_nothing(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    PartnerTemplate.objects.filter(partner=partner).update(url_template="https://{event_name}.acme.test/in")
    postback.refresh_from_db()
    with pytest.raises(RenderError, match="stands in the scheme, host or port"):
        render_postback(configuration=postback, values=EVENT)


def test_a_signed_post_carries_its_values_in_the_body_only(app):
    postback = factories.make_custom_postback(
        app, url="https://hooks.acme.test/in?src=pb", method="POST", macros=["adid"], signing_secret=SECRET
    )
    request = render_postback(configuration=postback, values=EVENT)
    assert request.url == "https://hooks.acme.test/in?src=pb"
    assert json.loads(request.body) == {"adid": "a&b=c#d"}
