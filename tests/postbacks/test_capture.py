"""POSTBACK_CAPTURE_URL: staging, QA and the demo see every postback, and no partner does."""

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from events.services import EventInput
from partners.models import PartnerField, PartnerTemplate
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture
def capture(settings):
    with Receiver() as running:
        settings.POSTBACK_CAPTURE_URL = running.url
        yield running


@pytest.fixture
def partner_receiver():
    """Where the postbacks would go without capture: it must hear nothing."""
    with Receiver() as running:
        yield running


def ingest(app, name="install"):
    data = EventInput(
        event_id=f"e-{name}", name=name, device_ids={"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}, occurred_at=T0
    )
    with clock.frozen(T0):
        events_ingest(app=app, items=[data])[0]
        return deliveries_send(claim=deliveries_claim(limit=10))


def test_deliveries_go_to_the_capture_receiver_whole_and_never_to_the_partner(
    app, partner, capture, partner_receiver, allow_private, client, support
):
    custom = factories.make_custom_postback(
        app,
        url=partner_receiver.url + "/pb/install?source=server",
        method="POST",
        macros=["adid"],
        signing_secret=SECRET,
    )
    # A certified template's host (postback.acme.test) does not even resolve: capture never asks.
    factories.make_certified_postback(
        factories.make_partner_configuration(app, partner, app_id="12345", token="tk-1"), delivery_method="all"
    )

    assert ingest(app) == {"delivered": 2}

    received = capture.wait_for(2)
    assert len(received) == 2
    assert partner_receiver.received == []
    by_path = {request.path: request for request in received}
    posted = by_path["/pb/install"]
    delivery = Delivery.objects.get(configuration=custom)
    assert posted.method == "POST"
    assert posted.query == {"source": ["server"]}
    assert json.loads(posted.body) == {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}
    assert posted.headers["content-type"] == "application/json"
    assert posted.headers["x-delivery-id"] == str(delivery.delivery_id)
    assert posted.headers["webhook-signature"].startswith("v1,")
    assert (
        posted.headers["x-postback-original-url"] == delivery.url == partner_receiver.url + "/pb/install?source=server"
    )
    certified = by_path["/12345/install"]
    assert certified.method == "GET"
    assert certified.query["gaid"] == ["38400000-8cf0-11bd-b23e-10b96e40000d"]
    assert certified.query["t"] == ["tk-1"]
    original = certified.headers["x-postback-original-url"]
    assert original.startswith("https://postback.acme.test/12345/install?") and "t=tk-1" in original

    # The log shows both: where it would have gone and where it went.
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.url == partner_receiver.url + "/pb/install?source=server"
    assert attempt.captured_url == capture.url + "/pb/install?source=server"
    certified_attempt = Attempt.objects.exclude(delivery=delivery).get()
    assert certified_attempt.url.startswith("https://postback.acme.test/12345/install?")
    assert certified_attempt.captured_url.startswith(capture.url + "/12345/install?")
    assert "tk-1" not in certified_attempt.url + certified_attempt.captured_url  # the secret field stays masked
    client.force_login(support)
    page = client.get(reverse("admin:postbacks_delivery_change", args=[delivery.pk])).content.decode()
    assert f"POST {partner_receiver.url}/pb/install?source=server" in page
    assert f"Captured: sent to {capture.url}/pb/install?source=server instead" in page


def test_a_test_postback_is_captured_too_and_the_page_says_where_it_went(
    app, capture, partner_receiver, allow_private, client, manager
):
    postback = factories.make_custom_postback(
        app, url=partner_receiver.url + "/t?k=v", method="POST", macros=["adid"], signing_secret=SECRET
    )
    client.force_login(manager)
    page = client.post(reverse("admin:postbacks_postbackconfiguration_send_test", args=[postback.pk])).content.decode()
    request = capture.wait_for(1)[0]
    assert partner_receiver.received == []
    assert (request.method, request.path, request.query) == ("POST", "/t", {"k": ["v"]})
    assert json.loads(request.body) == {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}
    assert request.headers["x-postback-test"] == "1"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["x-postback-original-url"] == partner_receiver.url + "/t?k=v"
    assert f"POST {partner_receiver.url}/t?k=v" in page
    assert f"sent to <code>{capture.url}/t?k=v</code> instead" in page
    assert "Delivered" in page
    preview = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert f"this would go to <code>{capture.url}/t?k=v</code> instead" in preview


def test_the_private_destination_guard_still_applies_to_the_capture_host(app, capture, partner_receiver, settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = False
    factories.make_custom_postback(app, url="https://hooks.acme.test/in", retry_attempts=0)
    ingest(app)
    attempt = Attempt.objects.get()
    assert attempt.error.startswith("Refused: 127.0.0.1 resolves to")
    assert attempt.captured_url == capture.url + "/in"
    assert capture.received == [] and partner_receiver.received == []


def test_without_the_setting_nothing_is_captured(app, partner_receiver, allow_private, settings):
    settings.POSTBACK_CAPTURE_URL = ""
    factories.make_custom_postback(app, url=partner_receiver.url + "/in", macros=["adid"])
    assert ingest(app) == {"delivered": 1}
    request = partner_receiver.wait_for(1)[0]
    assert "x-postback-original-url" not in request.headers
    assert Attempt.objects.get().captured_url == ""


def test_preview_and_test_page_flag_what_the_partner_requires_and_the_configuration_misses(
    app, partner, capture, allow_private, client, manager
):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner, app_id="12345"))
    # The partner gained a required secret after the configuration was saved, and its template
    # asks for a value the sample event cannot give as it wants.
    PartnerField.objects.create(
        partner=partner, name="access_token", label="Access Token", is_secret=True, required=True
    )
    PartnerTemplate.objects.filter(partner=partner, event="install").update(
        headers={"Access-Token": "{fields.access_token}", "X-Event": "{event_name}"},
        body={"gaid": "{adid}", "n": {"$macro": "event_name", "type": "integer"}},
    )
    client.force_login(manager)
    preview = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "What the partner requires and this misses" in preview
    assert "Acme Ads: Access Token is required." in preview
    assert "Left out of the request: body.n:" in preview
    assert "X-Event: APP_INSTALL" in preview  # the exact request, headers included
    page = client.post(reverse("admin:postbacks_postbackconfiguration_send_test", args=[postback.pk])).content.decode()
    assert "Acme Ads: Access Token is required." in page
    assert "Left out of the request: body.n:" in page
    assert "X-Event: APP_INSTALL" in page
    request = capture.wait_for(1)[0]
    assert "access-token" not in request.headers and "n" not in request.query
