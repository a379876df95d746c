import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from events.services import EventInput
from partners.models import PartnerTemplate
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery, PostbackConfiguration
from postbacks.rendering import RenderError, render_postback, sample_values
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.receiver import Reply

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
    assert "camp" not in query  # a value with nothing in it is left out (the template language's default)
    assert query["gaid"] == ["a&b=c#d"]


def test_changing_the_template_changes_what_configured_postbacks_send(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    PartnerTemplate.objects.filter(partner=partner, event="install").update(
        url_template="https://v2.acme.test/{fields.app_id}", body={"device": "{adid}"}
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


# --- the template language, end to end: ingest, the real send path, a real receiver, the log ---

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOKEN = "s3cr3t-token-value"


def _ingest(app, event_id="e1", name="install"):
    data = EventInput(
        event_id=event_id,
        name=name,
        device_ids={"adid": "38400000-8CF0-11BD-B23E-10B96E40000D"},
        occurred_at=T0,
        user_agent="Dalvik/2.1.0 (Linux; U; Android 14)",
        ip="203.0.113.7",
    )
    return events_ingest(app=app, items=[data])[0].event


@pytest.fixture
def json_partner(app, partner, receiver, allow_private):
    """The partner's install template as a JSON partner with a secret header, and its postback."""
    partner.templates.filter(event="install").update(
        url_template=receiver.url + "/track/{fields.app_id}",
        method="POST",
        encoding="json",
        query={"v": {"$const": 2}},
        headers={"Access-Token": "{fields.token}", "User-Agent": "{user_agent}", "X-Forwarded-For": "{ip}"},
        body={
            "data": [
                {
                    "event": "{event_name}",
                    "event_time": {"$macro": "event_time", "transforms": ["unix_ms"]},
                    "user": {"gaid": {"$macro": "adid", "transforms": ["lower", "sha256"]}, "idfa": "{idfa}"},
                }
            ]
        },
    )
    config = factories.make_partner_configuration(app, partner, app_id="4242", token=TOKEN)
    return factories.make_certified_postback(config, delivery_method="all", retry_attempts=3)


def _send():
    return deliveries_send(claim=deliveries_claim(limit=100))


def test_a_json_template_with_headers_reaches_the_receiver_as_written(app, json_partner, receiver):
    with clock.frozen(T0):
        _ingest(app)
        _send()
    [received] = receiver.wait_for(1)
    assert (received.method, received.path, received.query) == ("POST", "/track/4242", {"v": ["2"]})
    assert received.headers["access-token"] == TOKEN
    assert received.headers["user-agent"] == "Dalvik/2.1.0 (Linux; U; Android 14)"
    assert received.headers["x-forwarded-for"] == "203.0.113.7"
    assert received.headers["content-type"] == "application/json"
    gaid = hashlib.sha256(b"38400000-8cf0-11bd-b23e-10b96e40000d").hexdigest()
    assert json.loads(received.body) == {
        "data": [{"event": "APP_INSTALL", "event_time": int(T0.timestamp() * 1000), "user": {"gaid": gaid}}]
    }


def test_a_secret_in_a_header_is_masked_in_the_log_the_delivery_page_and_the_preview(
    app, json_partner, receiver, client
):
    with clock.frozen(T0):
        _ingest(app)
        _send()
    receiver.wait_for(1)
    attempt = Attempt.objects.get()
    assert attempt.request_headers["Access-Token"] == "••••"
    root = get_user_model().objects.create_superuser(username="root", password="pw-root")
    client.force_login(root)
    delivery = Delivery.objects.get()
    for page in (
        reverse("admin:postbacks_delivery_change", args=[delivery.pk]),
        reverse("admin:postbacks_postbackconfiguration_change", args=[json_partner.pk]),
    ):
        html = client.get(page).content.decode()
        assert "Access-Token: ••••" in html, page
        assert TOKEN not in html, page


@pytest.mark.parametrize(
    ("rules", "reply", "status", "error"),
    [
        (
            {"checks": [{"path": "install", "equals": False, "outcome": "not_chargeable"}]},
            '{"status": "ok", "install": false}',
            Delivery.Status.DELIVERED,
            "not chargeable (install = false)",
        ),
        (
            {"checks": [{"path": "code", "not_equals": 0, "outcome": "failed", "message_path": "message"}]},
            '{"code": 40105, "message": "Access token is incorrect"}',
            Delivery.Status.FAILED,
            "HTTP 200, the reply says code ≠ 0: Access token is incorrect",
        ),
        ({}, '{"code": 40105}', Delivery.Status.DELIVERED, ""),
    ],
)
def test_reply_rules_decide_a_200s_outcome_through_the_real_send_path(
    app, json_partner, receiver, rules, reply, status, error
):
    PartnerTemplate.objects.filter(partner=json_partner.partner, event="install").update(reply=rules)
    receiver.default = Reply(status=200, body=reply)
    with clock.frozen(T0):
        _ingest(app)
        _send()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error, delivery.attempts) == (status, error, 1)


def test_reply_rules_choose_retried_and_permanent_statuses_and_429_honours_retry_after(app, json_partner, receiver):
    PartnerTemplate.objects.filter(partner=json_partner.partner, event="install").update(
        reply={"fail": [503], "retry": [409, 429]}
    )
    receiver.replies = [Reply(status=409), Reply(status=429, headers={"Retry-After": "300"}), Reply(status=503)]
    with clock.frozen(T0) as frozen:
        _ingest(app)
        _send()
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.last_error) == (Delivery.Status.SCHEDULED, "HTTP 409")
        frozen.advance(delivery.due_at - clock.now())
        _send()
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SCHEDULED
        # Retry-After is honoured (within twice the schedule's wait): past the 120 s ±20 % schedule alone.
        assert delivery.due_at - clock.now() > timedelta(seconds=144)
        frozen.advance(delivery.due_at - clock.now())
        _send()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (
        Delivery.Status.FAILED,
        "HTTP 503: the receiver refused it, not retried",
    )


def test_a_value_the_template_cannot_convert_is_left_out_and_listed_under_the_preview(app, json_partner, client):
    PartnerTemplate.objects.filter(partner=json_partner.partner, event="install").update(
        encoding="json", body={"n": {"$macro": "app_name", "type": "integer"}, "ok": "{app_name}"}
    )
    json_partner.refresh_from_db()
    request = render_postback(configuration=json_partner, values=sample_values(configuration=json_partner))
    assert json.loads(request.body) == {"ok": app.name}
    assert request.problems == (f'body.n: "{app.name}" is not an integer',)
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root"))
    html = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[json_partner.pk])).content.decode()
    assert "body.n: &quot;Rocket&quot; is not an integer" in html


def test_the_reply_rules_of_a_batch_are_read_in_one_query(app, json_partner, receiver):
    with clock.frozen(T0):
        for number in range(3):
            _ingest(app, event_id=f"e{number}")
        with CaptureQueriesContext(connection) as queries:
            _send()
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 3
    assert sum("partners_partnertemplate" in query["sql"] for query in queries.captured_queries) == 1


def test_the_test_page_masks_a_secret_header_and_reads_the_reply_by_the_templates_rules(
    app, json_partner, receiver, client, manager
):
    PartnerTemplate.objects.filter(partner=json_partner.partner, event="install").update(
        reply={"checks": [{"path": "install", "equals": False, "outcome": "not_chargeable"}]}
    )
    receiver.default = Reply(status=200, body='{"status": "ok", "install": false}')
    client.force_login(manager)
    url = reverse("admin:postbacks_postbackconfiguration_send_test", args=[json_partner.pk])
    page = client.post(url).content.decode()
    assert receiver.wait_for(1)[0].headers["access-token"] == TOKEN
    assert "Access-Token: ••••" in page and TOKEN not in page
    assert "Delivered" in page and "not chargeable (install = false)" in page
