"""Property-based tests of the events API (hypothesis): whatever a client sends, the reply is
never a 500, and whatever is stored is valid."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.models import CustomEvent, Event
from events.serializers import MAX_JSON_DEPTH
from events.services import app_issue_api_key
from project import clock

pytestmark = pytest.mark.django_db

EXAMPLES = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def deep(levels: int) -> str:
    """A value `levels` lists deep, as a placeholder that as_json writes out: json.dumps
    itself cannot write 2,000 levels."""
    return f"<deep:{levels}>"


def as_json(body) -> str:
    """JSON text as a client sends it: a lone surrogate as its escape (\\udc00), deep() written out."""
    return re.sub(r'"<deep:(\d+)>"', lambda match: "[" * int(match[1]) + "1" + "]" * int(match[1]), json.dumps(body))


# Text PostgreSQL cannot store (NUL, lone surrogates) beside text it can (accents, a pair).
hostile_text = st.lists(
    st.sampled_from(["a", " ", "\x00", "\ud800", "\udc00", "\u00e9", "\U0001f600"]), max_size=6
).map("".join)


def any_text(max_size: int):
    return st.text(max_size=max_size) | hostile_text


anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | any_text(20)
    | st.integers(MAX_JSON_DEPTH - 2, 2500).map(deep),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text(8), children, max_size=3),
    max_leaves=8,
)
device_ids = st.dictionaries(
    st.sampled_from(["adid", "idfa", "idfv", "android_id", "device_id", "imei", ""]) | hostile_text,
    any_text(140) | st.uuids().map(str) | anything,
    max_size=4,
)
timestamps = st.datetimes(
    min_value=clock.now().replace(tzinfo=None) - timedelta(days=10),
    max_value=clock.now().replace(tzinfo=None) + timedelta(hours=1),
).map(lambda moment: moment.isoformat() + "Z")
OPTIONAL_FIELDS = {
    "timestamp": timestamps | st.text(max_size=30) | anything,
    "ip": st.ip_addresses().map(str) | any_text(40),
    "user_agent": any_text(600),
    "os_version": any_text(40),
    "country": st.sampled_from(["US", "de", "XX", "USA", ""]) | anything,
    "revenue": st.decimals(allow_nan=False, allow_infinity=False).map(str) | anything,
    "currency": st.sampled_from(["USD", "EUR", "usd", "XYZ", "DOLLARS"]) | anything,
    "value": any_text(1100),
    "properties": st.dictionaries(any_text(10), anything, max_size=4) | anything,
    "surprise": anything,
}
# Anything at all in every field...
wild_bodies = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(min_size=1, max_size=140) | hostile_text | anything,
        "event": st.sampled_from(["install", "session_begin", "purchase", "refund", ""]) | anything,
        "device": device_ids | anything,
        **OPTIONAL_FIELDS,
    },
)
# ...and bodies whose required fields are right, so that acceptance is exercised too.
plausible_bodies = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str),
        "event": st.sampled_from(["install", "session_begin", "purchase"]),
        "device": st.fixed_dictionaries({"adid": st.uuids().map(str)}, optional={"idfv": st.uuids().map(str)}),
    },
    optional=OPTIONAL_FIELDS,
)
event_bodies = wild_bodies | plausible_bodies


@pytest.fixture
def api(app):
    CustomEvent.objects.get_or_create(app=app, name="purchase")
    key = app_issue_api_key(app=app)
    client = Client()

    def post(body, path="/api/v1/events"):
        return client.post(path, as_json(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")

    return post


def assert_valid(event: Event) -> None:
    assert event.name in {"install", "session_begin", "purchase"}
    assert event.device_ids and all(
        kind in {"adid", "idfa", "idfv", "android_id", "device_id"} and isinstance(value, str) and value
        for kind, value in event.device_ids.items()
    )
    assert event.country == "" or re.fullmatch(r"[A-Z]{2}", event.country)
    assert event.currency == "" or re.fullmatch(r"[A-Z]{3}", event.currency)
    assert event.revenue is None or (isinstance(event.revenue, Decimal) and event.currency)
    assert isinstance(event.properties, dict)
    stored_text = [event.event_id, event.user_agent, event.os_version, event.app_version, event.value]
    stored_text.append(json.dumps([event.device_ids, event.properties], ensure_ascii=False))
    for text in stored_text:
        assert "\x00" not in text
        text.encode()  # raises on a lone surrogate
    assert event.occurred_at <= event.received_at + timedelta(minutes=5)


@EXAMPLES
@given(body=event_bodies)
def test_no_single_event_gives_a_500_and_what_is_stored_is_valid(api, body):
    before = Event.objects.count()
    response = api(body)
    assert response.status_code in {200, 202, 400}, response.content
    if response.status_code == 202:
        assert_valid(Event.objects.get(pk=response.json()["id"]))
        assert Event.objects.count() == before + 1
    else:
        assert Event.objects.count() == before  # a refusal or a duplicate stores nothing


@EXAMPLES
@given(items=st.lists(event_bodies | anything, max_size=6))
def test_no_batch_gives_a_500_and_each_item_gets_its_own_answer(api, items):
    before = Event.objects.count()
    response = api({"events": items}, path="/api/v1/events/batch")
    assert response.status_code in {200, 400}, response.content
    if response.status_code == 200:
        results = response.json()["results"]
        assert len(results) == len(items)
        accepted = [result for result in results if result.get("status") == "accepted"]
        assert all(isinstance(result["errors"], dict) for result in results if result["status"] == "rejected")
        assert Event.objects.count() == before + len(accepted)
        for result in accepted:
            assert_valid(Event.objects.get(pk=result["id"]))
    else:
        assert Event.objects.count() == before
