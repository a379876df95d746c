"""device_model and language: taken by both endpoints on every ingest path, stored with the
event (the language tag in BCP 47's recommended case), refused when bad, naming the field."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from events.models import Event
from events.services import app_issue_api_key
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"


@pytest.fixture
def ios_app(account):
    return factories.make_app(account, name="Rocket iOS", platform="ios", package="com.acme.rocketios")


@pytest.fixture
def key(ios_app):
    return app_issue_api_key(app=ios_app)


def post(key, body, path="/api/v1/events"):
    return Client().post(path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def body(event_id, name="install", **fields):
    at = clock.now() - timedelta(minutes=1)
    return {"event_id": event_id, "event": name, "device": {"idfa": IDFA}, "timestamp": at.isoformat(), **fields}


def send(key, path_kind, event_id, name="install", **fields):
    item = body(event_id, name, **fields)
    if path_kind == "serializer":
        item["user_agent"] = " padded "  # DRF trims it: the fast validator leaves this item to the serializer
    if path_kind == "batch":
        response = post(key, {"events": [item]}, path="/api/v1/events/batch")
        assert response.status_code == 200 and response.json()["results"][0]["status"] == "accepted", response.json()
    else:
        response = post(key, item)
        assert response.status_code == 202, response.json()
    return Event.objects.get(event_id=event_id)


@pytest.mark.parametrize("path_kind", ["plain", "serializer", "transaction", "batch"])
def test_stored_with_the_event_on_every_path(ios_app, key, path_kind):
    if path_kind == "transaction":
        # A configuration listening to every event sends each through the transaction path.
        for event in ("install", "session_begin"):
            factories.make_custom_postback(ios_app, event=event)
    install = send(key, path_kind, "e1", device_model="iPhone15,2", language="pt-br")
    assert (install.device_model, install.language) == ("iPhone15,2", "pt-BR")
    quiet = send(key, path_kind, "e2", name="session_begin")
    assert (quiet.device_model, quiet.language) == ("", "")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("en", "en"),
        ("EN-us", "en-US"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-CH-x-Phonebk", "de-CH-x-phonebk"),  # after a singleton, all lower-case
        ("", ""),
    ],
)
def test_the_language_tag_is_stored_in_the_case_bcp_47_recommends(key, sent, stored):
    assert send(key, "plain", "e1", language=sent).language == stored
    assert send(key, "batch", "e2", language=sent).language == stored


BAD_VALUES = [
    ("device_model", "x" * 65),
    ("device_model", 8),
    ("device_model", None),
    ("language", "e"),
    ("language", "en_US"),
    ("language", "en US"),
    ("language", "1en"),
    ("language", "en--US"),
    ("language", "en-"),
    ("language", "fr-" + "a" * 9),
    ("language", "en-" + "-".join(["abcdefgh"] * 4)),  # 38 characters
    ("language", "é"),
    ("language", ["en"]),
    ("language", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_field_on_both_endpoints(key, field, value):
    item = body("bad", **{field: value})
    response = post(key, item)
    assert response.status_code == 400
    assert field in response.json() and response.json()[field] != ["Unknown field."]
    good = body("good", device_model="Pixel 8", language="en-US")
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
    assert (properties["device_model"]["type"], properties["device_model"]["maxLength"]) == ("string", 64)
    assert (properties["language"]["type"], properties["language"]["maxLength"]) == ("string", 35)
    assert "BCP 47" in properties["language"]["description"]


def test_the_admin_shows_them_on_the_event_page(client, key, support):
    event = send(key, "plain", "e1", device_model="iPhone15,2", language="en-gb")
    client.force_login(support)
    page = client.get(reverse("admin:events_event_change", args=[event.pk])).content.decode()
    assert "Device model" in page and "iPhone15,2" in page
    assert "Language" in page and "en-GB" in page
