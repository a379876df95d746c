"""Tracking and consent (att_status, limit_ad_tracking, consent): taken by both endpoints on
every ingest path, stored with the event, the latest kept on the device, refused when bad."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from events.models import Device, Event
from events.services import app_issue_api_key
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
IDFV = "599f9c00-92dc-4b5c-9464-7971f01f8370"


@pytest.fixture
def ios_app(account):
    return factories.make_app(account, name="Rocket iOS", platform="ios", package="com.acme.rocketios")


@pytest.fixture
def key(ios_app):
    return app_issue_api_key(app=ios_app)


def post(key, body, path="/api/v1/events"):
    return Client().post(path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def body(event_id, name="install", hours_ago=0):
    at = clock.now() - timedelta(hours=hours_ago)
    return {"event_id": event_id, "event": name, "device": {"idfa": IDFA, "idfv": IDFV}, "timestamp": at.isoformat()}


def send(key, path_kind, event_id, name="install", hours_ago=0, **fields):
    item = {**body(event_id, name, hours_ago), **fields}
    if path_kind == "serializer":
        item["user_agent"] = " padded "  # DRF trims it: the fast validator leaves this item to the serializer
    if path_kind == "batch":
        response = post(key, {"events": [item]}, path="/api/v1/events/batch")
        assert response.status_code == 200 and response.json()["results"][0]["status"] == "accepted", response.json()
    else:
        response = post(key, item)
        assert response.status_code == 202, response.json()
    return Event.objects.get(event_id=event_id)


TRACKING = ("att_status", "limit_ad_tracking", "consent_ad_user_data", "consent_ad_personalization")


def tracking(record) -> tuple:
    return tuple(getattr(record, name) for name in TRACKING)


@pytest.mark.parametrize("path_kind", ["plain", "serializer", "transaction", "batch"])
def test_stored_with_the_event_and_the_latest_kept_on_the_device(ios_app, key, path_kind):
    if path_kind == "transaction":
        # A configuration listening to every event sends each through the transaction path.
        for event in ("install", "session_begin", "purchase"):
            factories.make_custom_postback(ios_app, event=event)
    first = send(
        key,
        path_kind,
        "e1",
        hours_ago=5,
        att_status="authorized",
        limit_ad_tracking=False,
        consent={"ad_user_data": True, "ad_personalization": False},
    )
    assert tracking(first) == ("authorized", False, True, False)
    device = Device.objects.get(pk=first.device_id)
    assert tracking(device) == ("authorized", False, True, False)

    # An event that reports nothing leaves the device as it was.
    quiet = send(key, path_kind, "e2", name="session_begin", hours_ago=4)
    assert tracking(quiet) == ("", None, None, None)
    assert tracking(Device.objects.get(pk=device.pk)) == ("authorized", False, True, False)

    # A later one changes what it reports, and only that.
    denied = send(
        key, path_kind, "e3", name="purchase", hours_ago=2, att_status="denied", consent={"ad_user_data": False}
    )
    assert tracking(denied) == ("denied", None, False, None)
    assert tracking(Device.objects.get(pk=device.pk)) == ("denied", False, False, False)

    # One that happened before the latest report (sent late) is stored, but the device keeps the newer state.
    late = send(key, path_kind, "e4", name="purchase", hours_ago=3, att_status="authorized", limit_ad_tracking=True)
    assert tracking(late) == ("authorized", True, None, None)
    assert tracking(Device.objects.get(pk=device.pk)) == ("denied", False, False, False)
    assert Event.objects.filter(device=device).count() == 4


def test_a_batch_keeps_the_latest_by_event_time(ios_app, key):
    items = [
        {**body("b1", hours_ago=1), "att_status": "denied"},
        {**body("b2", name="purchase", hours_ago=3), "att_status": "authorized", "limit_ad_tracking": True},
    ]
    response = post(key, {"events": items}, path="/api/v1/events/batch")
    assert [result["status"] for result in response.json()["results"]] == ["accepted", "accepted"]
    device = Device.objects.get(app=ios_app)
    assert (device.att_status, device.limit_ad_tracking) == ("denied", None)


BAD_VALUES = [
    ("att_status", "AUTHORIZED"),
    ("att_status", "granted"),
    ("att_status", ""),
    ("att_status", None),
    ("att_status", 3),
    ("limit_ad_tracking", "true"),
    ("limit_ad_tracking", 1),
    ("limit_ad_tracking", None),
    ("consent", True),
    ("consent", []),
    ("consent", {"ad_user_data": "yes"}),
    ("consent", {"ad_user_data": 1}),
    ("consent", {"ad_storage": True}),
]


GOOD_VALUES = {"att_status": "authorized", "limit_ad_tracking": False, "consent": {"ad_user_data": True}}


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_field_on_both_endpoints(ios_app, key, field, value):
    item = {**body("bad"), field: value}
    response = post(key, item)
    assert response.status_code == 400
    assert field in response.json() and response.json()[field] != ["Unknown field."]
    good = {**body("good"), field: GOOD_VALUES[field]}
    response = post(key, {"events": [item, good]}, path="/api/v1/events/batch")
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["rejected", "accepted"]
    assert field in results[0]["errors"]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["good"]


def test_the_schema_describes_the_fields(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    event = next(
        value
        for name, value in schema["components"]["schemas"].items()
        if name.startswith("Event") and "att_status" in value["properties"]
    )
    properties = event["properties"]
    att_status = properties["att_status"]
    # drf-spectacular names the enum as a component of its own
    reference = att_status.get("$ref") or att_status["allOf"][0]["$ref"]
    att_status = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert sorted(att_status["enum"]) == ["authorized", "denied", "not_determined", "restricted"]
    assert properties["limit_ad_tracking"]["type"] == "boolean"
    assert properties["consent"]["properties"] == {
        "ad_user_data": {"type": "boolean"},
        "ad_personalization": {"type": "boolean"},
    }
    assert properties["consent"]["additionalProperties"] is False


def test_the_admin_shows_them_on_event_and_device_pages(client, ios_app, key, support):
    event = send(
        key, "plain", "e1", att_status="restricted", limit_ad_tracking=True, consent={"ad_personalization": True}
    )
    client.force_login(support)
    page = client.get(reverse("admin:events_event_change", args=[event.pk])).content.decode()
    assert "App Tracking Transparency status" in page and "restricted" in page
    assert "Limits ad tracking" in page and "Consents to ad personalization (EEA)" in page
    page = client.get(reverse("admin:events_device_change", args=[event.device_id])).content.decode()
    assert "Tracking and consent" in page and "restricted" in page
    assert "Consents to ad personalization (EEA)" in page
