"""No input gives a 500, and one bad item never costs the others.

Text PostgreSQL cannot store (NUL, a lone UTF-16 surrogate sent as a JSON escape such as
"\\udc00") and JSON nested deeper than any event needs are refused with a 400 naming the
field, in every field, on both endpoints and on both of the lone endpoint's paths (the
plain path and DRF's full cycle). In a batch, such an item is rejected in its place and
every valid item is stored, even when the database itself refuses an item.
"""

import json

import pytest
from django.db import connection

from events.models import Event
from events.serializers import MAX_JSON_DEPTH
from events.services import app_issue_api_key
from tests.events.test_api_properties import as_json, deep

pytestmark = pytest.mark.django_db

ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
NUL, LONE = "\x00", "\udc00"


def event(**overrides):
    return {"event_id": "evt-1", "event": "purchase", "device": {"adid": ADID}, **overrides}


def valid_events(count: int) -> list[dict]:
    """`count` valid events of as many devices."""
    return [
        event(event_id=f"ok-{number}", device={"idfv": f"00000000-0000-4000-8000-{number:012d}"})
        for number in range(count)
    ]


# (case name, the item, the field its error must name)
UNSTORABLE = [
    ("nul in device_id", event(device={"device_id": f"dev{NUL}1"}), "device"),
    ("surrogate in device_id", event(device={"device_id": f"dev{LONE}"}), "device"),
    ("surrogate in an unknown device key", event(device={"adid": ADID, LONE: "x"}), "device"),
    ("surrogate in a properties key", event(properties={f"k{LONE}": 1}), "properties"),
    ("surrogate in a properties value", event(properties={"k": [f"v{LONE}"]}), "properties"),
    ("high surrogate alone in properties", event(properties={"k": "\ud83d"}), "properties"),
    ("nul in a properties key", event(properties={f"k{NUL}": 1}), "properties"),
    ("properties 2,000 levels deep", event(properties={"k": deep(2000)}), "properties"),
    ("properties 40 levels deep", event(properties={"k": deep(40)}), "properties"),
    ("surrogate in event_id", event(event_id=f"e{LONE}"), "event_id"),
    ("nul in event_id", event(event_id=f"e{NUL}"), "event_id"),
    ("surrogate in event", event(event=f"purchase{LONE}"), "event"),
    ("surrogate in user_agent", event(user_agent=f"Mozilla{LONE}"), "user_agent"),
    ("nul in user_agent", event(user_agent=f"Mozilla{NUL}"), "user_agent"),
    ("surrogate in os_version", event(os_version=LONE), "os_version"),
    ("surrogate in app_version", event(app_version=LONE), "app_version"),
    ("surrogate in country", event(country=f"U{LONE}"), "country"),
    ("surrogate in currency", event(revenue="1", currency=f"US{LONE}"), "currency"),
    ("surrogate in value", event(value=f"sku{LONE}"), "value"),
    ("surrogate in ip", event(ip=f"1.2.3.4{LONE}"), "ip"),
    ("surrogate in timestamp", event(timestamp=f"2026-11-23T10:00:00{LONE}"), "timestamp"),
    ("surrogate in revenue", event(revenue=f"1{LONE}", currency="USD"), "revenue"),
    ("surrogate in an unknown field's name", {**event(), f"x{LONE}": 1}, "x\\udc00"),
    ("nul in adid", event(device={"adid": f"{ADID}{NUL}"}), "device"),
    ("device nested 2,000 levels deep", event(device={"device_id": deep(2000)}), "device"),
]
IDS = [case[0] for case in UNSTORABLE]


@pytest.fixture
def key(app):
    app.custom_events.get_or_create(name="purchase")
    return app_issue_api_key(app=app)


def post(client, key, body, *, path="/api/v1/events", charset=None):
    """The body as JSON text: a lone surrogate travels as its escape (\\udc00), as a client sends it.
    With a charset, the request takes DRF's full cycle instead of the plain path."""
    content_type = "application/json" + (f"; charset={charset}" if charset else "")
    return client.post(path, as_json(body), content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {key}")


def assert_names_field(errors: dict, field: str) -> None:
    assert field in errors, errors
    assert json.dumps(errors[field]), errors  # words, without the bad text itself


@pytest.mark.parametrize("charset", [None, "utf-16"], ids=["plain path", "drf cycle"])
@pytest.mark.parametrize(("case", "item", "field"), UNSTORABLE, ids=IDS)
def test_a_lone_event_with_unstorable_input_gets_a_400_naming_the_field(client, key, charset, case, item, field):
    response = post(client, key, item, charset=charset)
    assert response.status_code == 400, response.content
    assert_names_field(response.json(), field)
    assert not Event.objects.exists()


@pytest.mark.parametrize(("case", "item", "field"), UNSTORABLE, ids=IDS)
def test_a_batch_rejects_the_unstorable_item_in_its_place_and_keeps_the_others(client, key, case, item, field):
    items = [event(event_id=f"ok-{number}") for number in range(4)]
    items.insert(2, item)
    response = post(client, key, {"events": items}, path="/api/v1/events/batch")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["accepted"] * 2 + ["rejected"] + ["accepted"] * 2
    assert_names_field(results[2]["errors"], field)
    assert sorted(Event.objects.values_list("event_id", flat=True)) == [f"ok-{number}" for number in range(4)]


@pytest.mark.parametrize(
    "bad",
    [
        event(event_id="bad", device={"device_id": f"x{NUL}"}),
        event(event_id="bad", properties={LONE: 1}),
        event(event_id="bad", properties={"k": deep(2000)}),
    ],
    ids=["nul in device_id", "surrogate key in properties", "properties 2,000 levels deep"],
)
def test_a_batch_of_999_valid_events_and_one_bad_one_stores_the_999(client, key, bad):
    items = valid_events(999)
    items.insert(500, bad)
    response = post(client, key, {"events": items}, path="/api/v1/events/batch")
    assert response.status_code == 200, response.content[:500]
    results = response.json()["results"]
    assert [result["index"] for result in results] == list(range(1000))
    assert [result["status"] for result in results].count("accepted") == 999
    assert results[500]["status"] == "rejected"
    assert Event.objects.count() == 999


def test_a_value_nested_exactly_as_deep_as_allowed_is_accepted(client, key):
    # The properties object is the first level of containers, its lists the next ones.
    response = post(client, key, event(properties={"k": deep(MAX_JSON_DEPTH - 1)}))
    assert response.status_code == 202, response.content
    too_deep = post(client, key, event(event_id="evt-2", properties={"k": deep(MAX_JSON_DEPTH)}))
    assert too_deep.status_code == 400
    assert f"Nested more than {MAX_JSON_DEPTH} levels" in json.dumps(too_deep.json()["properties"])


def test_a_whole_body_nested_too_deep_is_a_400_not_a_500(client, key):
    response = client.post(
        "/api/v1/events/batch",
        "[" * 100_000 + "]" * 100_000,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 400
    assert not Event.objects.exists()


def test_a_batch_whose_item_is_null_reports_its_errors_as_an_object(client, key):
    response = post(client, key, {"events": [None, event()]}, path="/api/v1/events/batch")
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["status"] == "rejected"
    assert first["errors"] == {"non_field_errors": ["This field may not be null."]}
    assert second["status"] == "accepted"


# The database refuses one row: a trigger refuses a `value` of "refused-by-the-database"
# (PostgreSQL: a data exception; SQLite: a constraint failure). Validation lets the value by,
# as it lets by whatever only the database knows it cannot take.
REFUSED = "refused-by-the-database"


@pytest.fixture
def database_refuses_a_value():
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse_value() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.value = '{REFUSED}' THEN RAISE EXCEPTION 'value refused' USING ERRCODE = '22000'; END IF; "
                "RETURN NEW; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER test_refuse_value BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_value()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_refuse_value BEFORE INSERT ON {table} "
                f"WHEN NEW.value = '{REFUSED}' BEGIN SELECT RAISE(ABORT, 'value refused'); END"
            )
    # The test's transaction is rolled back at its end, trigger included (SQLite and PostgreSQL).


def test_when_the_database_refuses_one_item_of_a_batch_the_others_are_stored(client, key, database_refuses_a_value):
    items = valid_events(50)
    items.insert(20, event(event_id="refused", value=REFUSED))
    items.append(event(event_id="ok-1"))  # a duplicate of a stored item stays a duplicate
    response = post(client, key, {"events": items}, path="/api/v1/events/batch")
    assert response.status_code == 200, response.content[:500]
    results = response.json()["results"]
    statuses = [result["status"] for result in results]
    assert statuses == ["accepted"] * 20 + ["rejected"] + ["accepted"] * 30 + ["duplicate"]
    assert "database refused" in json.dumps(results[20]["errors"])
    assert Event.objects.count() == 50
    assert not Event.objects.filter(event_id="refused").exists()
    assert results[-1]["id"] == Event.objects.get(event_id="ok-1").pk


@pytest.mark.parametrize("charset", [None, "utf-16"], ids=["plain path", "drf cycle"])
def test_when_the_database_refuses_a_lone_event_it_is_a_400(client, key, database_refuses_a_value, charset):
    response = post(client, key, event(value=REFUSED), charset=charset)
    assert response.status_code == 400, response.content
    assert "database refused" in json.dumps(response.json())
    assert not Event.objects.exists()
    assert post(client, key, event(event_id="evt-2")).status_code == 202  # and the next one is fine
