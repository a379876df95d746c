"""The erasure API as a client app sees it: 202 pending, then completed with counts; scoped
to the app's key; refusals worded as the events API words them; rate-limited per key."""

import json

import pytest

from events.models import Device
from events.services import EventInput, app_issue_api_key
from postbacks.erasure import erasure_process
from postbacks.ingest import events_ingest
from postbacks.models import Erasure
from project import clock
from tests.events.conftest import fresh_rate_limit  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"


@pytest.fixture
def key(app):
    return app_issue_api_key(app=app)


def erase(client, key, body):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/v1/erasures", data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def read(client, key, erasure_id):
    return client.get(f"/api/v1/erasures/{erasure_id}", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_an_erasure_is_accepted_pending_then_reads_completed_with_its_counts(client, key, app):
    events_ingest(app=app, items=[EventInput("evt-1", "install", {"adid": ADID}, occurred_at=clock.now())])
    # Normalised as the events API normalises ids: upper case is the same adid.
    response = erase(client, key, {"device": {"adid": ADID.upper()}})
    assert response.status_code == 202
    body = response.json()
    assert body == {"id": body["id"], "status": "pending"}
    pending = read(client, key, body["id"])
    assert pending.status_code == 200
    assert pending.json() == {
        "id": body["id"],
        "status": "pending",
        "requested_at": pending.json()["requested_at"],
        "completed_at": None,
        "counts": None,
    }

    erasure_process(erasure_id=Erasure.objects.get().pk)  # what the worker does

    completed = read(client, key, body["id"]).json()
    assert completed["status"] == "completed" and completed["completed_at"]
    assert completed["counts"] == {
        "devices": 1,
        "identifiers": 1,
        "events": 1,
        "clicks": 0,
        "deliveries": 0,
        "attempts": 0,
    }
    assert not Device.objects.exists()


def test_another_apps_key_finds_no_erasure(client, key, app, other_app):
    erasure_id = erase(client, key, {"device": {"adid": ADID}}).json()["id"]
    other_key = app_issue_api_key(app=other_app)
    for path_id in (erasure_id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = read(client, other_key, path_id)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert read(client, key, erasure_id).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"device": {}}, "Give at least one device identifier"),
        ({"device": {"adid": "00000000-0000-0000-0000-000000000000"}}, "an all-zero ID does not count"),
        ({"device": {"adid": "nope"}}, "Must be a UUID"),
        ({"device": {"phone": "+1 555"}}, "Unknown device identifier"),
    ],
)
def test_a_request_naming_no_usable_id_is_refused_and_records_nothing(client, key, body, message):
    response = erase(client, key, body)
    assert response.status_code == 400
    assert message in json.dumps(response.json()["device"])
    assert not Erasure.objects.exists()


def test_keys_and_bodies_are_refused_as_the_events_api_refuses_them(client, key, app):
    response = client.post("/api/v1/erasures", json.dumps({"device": {"adid": ADID}}), content_type="application/json")
    assert (response.status_code, response.json()) == (401, {"detail": "Missing or invalid API key."})
    assert response["WWW-Authenticate"] == "Bearer"
    assert client.get(f"/api/v1/erasures/{ADID}").status_code == 401
    response = client.post("/api/v1/erasures", "adid=x", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 415
    assert erase(client, key, "{not json").status_code == 400
    huge = {"device": {"adid": ADID}, "padding": "x" * 70_000}
    assert erase(client, key, huge).status_code == 413
    assert not Erasure.objects.exists()


def test_erasure_requests_have_their_own_rate_limit_per_key(client, key, app, other_app, settings, fresh_rate_limit):  # noqa: F811
    settings.ERASURE_RATE_LIMIT_PER_MINUTE = 2
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    event = {"event_id": "e1", "event": "install", "device": {"adid": ADID}}
    sent = client.post("/api/v1/events", json.dumps(event), "application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert sent.status_code == 202  # the key's events budget is now spent...
    codes = [erase(client, key, {"device": {"adid": ADID}}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]  # ...not its erasures'
    refused = erase(client, key, {"device": {"adid": ADID}})
    assert int(refused["Retry-After"]) > 0 and "throttled" in refused.json()["detail"]
    assert read(client, key, Erasure.objects.filter(app=app).first().pk).status_code == 429  # reads: the events'
    assert erase(client, app_issue_api_key(app=other_app), {"device": {"adid": ADID}}).status_code == 202
    assert Erasure.objects.filter(app=app).count() == 2


def test_the_schema_describes_both_erasure_endpoints(client):
    document = client.get("/api/schema/?format=json").json()
    post = document["paths"]["/api/v1/erasures"]["post"]
    assert set(post["responses"]) == {"202", "400", "401", "413", "415", "429", "503"}
    get = document["paths"]["/api/v1/erasures/{erasure_id}"]["get"]
    assert set(get["responses"]) == {"200", "401", "404", "429", "503"}
    assert "Retry-After" in get["responses"]["429"]["headers"]
    assert post["security"] == [{"appKey": []}]
