"""The events API as a client app sees it: every reply code, idempotency, isolation, bad input."""

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from events.models import App, Device, Event
from events.services import app_issue_api_key
from postbacks.retention import retention_run
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"


@pytest.fixture
def key(app):
    return app_issue_api_key(app=app)


def post(client, key, body, path="/api/v1/events", **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}", **extra)


def event(**overrides):
    return {"event_id": "evt-1", "event": "install", "device": {"adid": ADID}, **overrides}


def test_an_event_is_accepted_once_and_replayed_as_a_duplicate(client, key, app):
    first = post(client, key, event(revenue="4.99", currency="usd", country="us", properties={"level": 3}))
    assert first.status_code == 202
    body = first.json()
    assert body == {"event_id": "evt-1", "id": body["id"], "postbacks_scheduled": 0}
    again = post(client, key, event(event="purchase"))  # same event_id: the first result, nothing new
    assert again.status_code == 200
    assert again.json() == body
    stored = Event.objects.get()
    assert (stored.name, stored.currency, stored.country, stored.properties) == ("install", "USD", "US", {"level": 3})
    assert stored.device.app == app
    assert stored.ip == "127.0.0.1"  # the caller's address by default


def test_a_replay_is_a_duplicate_on_a_later_day_and_refused_for_its_age_once_its_key_is_gone(client, key, app):
    """An app's event_id is unique through its key, whichever day's partition the event is in
    (docs/retention.md#idempotency): kept EVENT_MAX_AGE_DAYS + 1, then the replay's own
    timestamp, the original's, is too old."""
    start = clock.now().replace(hour=9, minute=0) + timedelta(days=1)  # a day of its own partition
    replay = event(timestamp=start.isoformat())
    with clock.frozen(start):
        first = post(client, key, replay)
    assert first.status_code == 202
    for days in (1, 3, 7):
        with clock.frozen(start + timedelta(days=days)):
            again = post(client, key, replay)
        assert (again.status_code, again.json()) == (200, first.json())
    with clock.frozen(start + timedelta(days=9)):
        assert retention_run().counts["event keys"] == 1
        late = post(client, key, replay)
    assert late.status_code == 400 and "Older than 7 days" in late.json()["timestamp"][0]
    assert Event.objects.count() == 1


def test_missing_unknown_and_inactive_keys_get_the_same_401(client, key, app):
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer pbk_nope"}, {"HTTP_AUTHORIZATION": f"Token {key}"}):
        response = client.post("/api/v1/events", json.dumps(event()), content_type="application/json", **header)
        assert response.status_code == 401
        assert response.json() == {"detail": "Missing or invalid API key."}
        assert response["WWW-Authenticate"] == "Bearer"
    App.objects.filter(pk=app.pk).update(is_active=False)
    response = post(client, key, event())
    assert (response.status_code, response.json()) == (401, {"detail": "Missing or invalid API key."})
    assert not Event.objects.exists()


def test_one_apps_key_never_writes_to_another_app(client, key, app, other_app):
    other_key = app_issue_api_key(app=other_app)
    assert post(client, key, event()).status_code == 202
    assert post(client, other_key, event()).status_code == 202  # same event_id, other app: its own event
    assert Event.objects.filter(app=app).count() == 1
    assert Event.objects.filter(app=other_app).count() == 1
    assert Device.objects.filter(app=app).count() == Device.objects.filter(app=other_app).count() == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"event": "install", "device": {"adid": ADID}}, "event_id", "This field is required."),
        (event(event_id="has space"), "event_id", "printable ASCII"),
        (event(event="refund"), "event", "declare it as a custom event"),
        (event(device={}), "device", "at least one device identifier"),
        (event(device={"adid": "00000000-0000-0000-0000-000000000000"}), "device", "all-zero ID does not count"),
        (event(device={"adid": "not-a-uuid"}), "device", "Must be a UUID"),
        (event(device={"imei": "123"}), "device", "Unknown device identifier"),
        (event(device="abc"), "device", "Must be an object"),
        (event(timestamp="yesterday"), "timestamp", "Datetime has wrong format"),
        (event(country="XX"), "country", "ISO 3166"),
        (event(revenue="1.5"), "currency", "Required with revenue"),
        (event(revenue="lots", currency="USD"), "revenue", "A valid number is required"),
        (event(revenue="1", currency="ABC"), "currency", "ISO 4217"),
        (event(ip="999.1.1.1"), "ip", "valid IPv4 or IPv6"),
        (event(properties=[1, 2]), "properties", "Must be an object"),
        (event(properties={"blob": "x" * 5000}), "properties", "At most 4096 bytes"),
        (event(properties={"a": ["ok", {"\x00": 1}]}), "properties", "Must not contain NUL"),
        (event(colour="red"), "colour", "Unknown field"),
        (event(user_agent=12), "user_agent", "Not a valid string"),
        (event(event_id=12345), "event_id", "Not a valid string"),
    ],
)
def test_invalid_events_get_per_field_errors_and_store_nothing(client, key, body, field, message):
    response = post(client, key, body)
    assert response.status_code == 400
    assert message in json.dumps(response.json()[field]), response.json()
    assert not Event.objects.exists()


def test_timestamps_too_far_in_future_or_past_are_refused(client, key, settings):
    now = timezone.now()
    with clock.frozen(now):
        future = post(client, key, event(timestamp=(now + timedelta(minutes=6)).isoformat()))
        assert "in the future" in future.json()["timestamp"][0]
        old = post(client, key, event(timestamp=(now - timedelta(days=8)).isoformat()))
        assert "Older than 7 days" in old.json()["timestamp"][0]
        backdated = post(client, key, event(timestamp=(now - timedelta(days=6)).isoformat()))
        assert backdated.status_code == 202
        settings.EVENT_MAX_AGE_DAYS = 30
        assert (
            post(client, key, event(event_id="e2", timestamp=(now - timedelta(days=20)).isoformat())).status_code == 202
        )
    assert Event.objects.get(event_id="evt-1").occurred_at == now - timedelta(days=6)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[]",
        b'"text"',
        b"null",
        b'{"event_id": ["a"], "event": {}, "device": 1}',
        "\udcff".encode("utf-8", "surrogatepass"),
        b'{"event_id": "e1", "event": "install", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}, '
        b'"revenue": NaN}',
    ],
)
def test_malformed_bodies_never_give_a_500(client, key, raw):
    response = post(client, key, raw)
    assert response.status_code == 400
    assert not Event.objects.exists()


def test_body_is_read_in_the_charset_its_content_type_names(client, key):
    body = json.dumps({**event(), "value": "caf\u00e9 \u2603"}, ensure_ascii=False)
    response = client.post(
        "/api/v1/events",
        body,  # the test client encodes it in the charset named
        content_type="application/json; charset=utf-16",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 202, response.content
    assert response["Content-Type"] == "application/json"
    assert Event.objects.get().value == "caf\u00e9 \u2603"


def test_plain_requests_and_drfs_full_cycle_reply_and_store_alike(client, key):
    """A plain request skips DRF's request cycle (EventView.plain_post); a body in another
    charset takes the full cycle. Both must reply and store the same."""
    body = event(
        event="purchase",
        timestamp=(timezone.now() - timedelta(hours=1)).isoformat(),
        revenue="4.99",
        currency="usd",
        country="us",
        properties={"cart": [1, 2]},
        value="sku-42",
    )
    plain = post(client, key, {**body, "event_id": "plain"})
    full = client.post(
        "/api/v1/events",
        json.dumps({**body, "event_id": "full"}),
        content_type="application/json; charset=utf-16",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    for response, event_id in ((plain, "plain"), (full, "full")):
        assert response.status_code == 202
        assert response.json() == {"event_id": event_id, "id": response.json()["id"], "postbacks_scheduled": 0}
        assert (response["Content-Type"], response["Allow"]) == ("application/json", "POST, OPTIONS")
    columns = [field.attname for field in Event._meta.concrete_fields if field.attname not in ("id", "event_id")]
    stored = {row.pop("event_id"): row for row in Event.objects.values("event_id", *columns)}
    assert stored["plain"].pop("received_at") and stored["full"].pop("received_at")
    assert stored["plain"] == stored["full"]
    assert stored["plain"]["revenue"] == Decimal("4.99") and stored["plain"]["ip"] == "127.0.0.1"
    # A repeat answers with the first result whichever way each came.
    again = client.post(
        "/api/v1/events",
        json.dumps({**body, "event_id": "plain"}),
        content_type="application/json; charset=utf-16",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert (again.status_code, again.json()) == (200, plain.json())
    assert (post(client, key, {**body, "event_id": "full"}).json()) == full.json()


def test_a_plain_request_over_the_rate_limit_is_refused_and_counted_once(client, key, settings, fresh_rate_limit):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    statuses = [post(client, key, event(event_id=f"r{number}")).status_code for number in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    assert Event.objects.count() == 3


def test_wrong_content_type_is_refused(client, key):
    response = client.post(
        "/api/v1/events", "event_id=1", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 415


def test_huge_bodies_get_413(client, key):
    response = post(client, key, event(value="x" * 70_000))
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]
    batch = {"events": [event(event_id=f"e{i}", value="x" * 1000) for i in range(4200)]}
    assert post(client, key, batch, path="/api/v1/events/batch").status_code == 413
    assert not Event.objects.exists()


def test_rate_limit_per_key(client, key, other_app, settings, fresh_rate_limit):
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    assert post(client, key, event(event_id="a")).status_code == 202
    assert post(client, key, event(event_id="b")).status_code == 202
    limited = post(client, key, event(event_id="c"))
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert post(client, app_issue_api_key(app=other_app), event(event_id="c")).status_code == 202  # its own budget
    assert not Event.objects.filter(event_id="c", app__name="Rocket").exists()


def test_the_rate_limit_counts_a_batchs_events_and_refuses_a_batch_that_would_pass_it_whole(
    client, key, settings, fresh_rate_limit
):
    settings.API_RATE_LIMIT_PER_MINUTE = 10
    batch = {"events": [event(event_id=f"a{number}") for number in range(6)]}
    assert post(client, key, batch, path="/api/v1/events/batch").status_code == 200
    over = post(
        client, key, {"events": [event(event_id=f"b{number}") for number in range(5)]}, path="/api/v1/events/batch"
    )
    assert over.status_code == 429  # 6 + 5 events: refused whole, nothing of it stored
    assert 0 < int(over["Retry-After"]) <= 60
    assert Event.objects.count() == 6
    assert post(client, key, event(event_id="c")).status_code == 429  # the refused five counted too


def test_batch_keeps_valid_items_and_reports_each_in_order(client, key):
    post(client, key, event(event_id="seen"))
    response = post(
        client,
        key,
        {
            "events": [
                event(event_id="b1"),
                event(event_id="b2", event="refund"),
                event(event_id="seen"),
                "not an object",
                event(event_id="b3", event="purchase", revenue=2, currency="EUR"),
            ]
        },
        path="/api/v1/events/batch",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["status"] for item in results] == ["accepted", "rejected", "duplicate", "rejected", "accepted"]
    assert [item["index"] for item in results] == [0, 1, 2, 3, 4]
    assert "declare it as a custom event" in json.dumps(results[1]["errors"])
    assert results[2]["id"] == Event.objects.get(event_id="seen").pk
    assert set(Event.objects.values_list("event_id", flat=True)) == {"seen", "b1", "b3"}


def test_batch_limits(client, key):
    assert post(client, key, {"events": []}, path="/api/v1/events/batch").status_code == 400
    too_many = {"events": [event(event_id=f"e{i}") for i in range(1001)]}
    response = post(client, key, too_many, path="/api/v1/events/batch")
    assert response.status_code == 400
    assert "no more than 1000" in json.dumps(response.json())


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/events", "/api/v1/events/batch"} <= set(paths)
    assert client.get("/api/docs/").status_code == 200


def test_click_records_and_redirects(client, app, partner):
    tracker = factories.make_tracker(app, partner, campaign_name="Launch")
    response = client.get(
        f"/t/{tracker.id}?adid={ADID.upper()}&click_id=clk-9&sub1=foo&idfa=garbage",
        HTTP_USER_AGENT="Mozilla/5.0",
    )
    assert response.status_code == 302
    assert response["Location"] == tracker.destination_url
    click = tracker.clicks.get()
    assert (click.adid, click.idfa, click.click_id) == (ADID, "", "clk-9")
    assert click.parameters == {"sub1": "foo"}
    assert (click.ip, click.user_agent) == ("127.0.0.1", "Mozilla/5.0")


def test_a_click_leaves_out_what_cannot_be_stored_and_still_redirects(client, app, partner):
    tracker = factories.make_tracker(app, partner)
    response = client.get(
        f"/t/{tracker.id}?adid={ADID}&device_id=d%00&click_id=c%00&sub1=%00&%00=1&sub2=ok",
        HTTP_USER_AGENT="Mozilla\x00",
    )
    assert (response.status_code, response["Location"]) == (302, tracker.destination_url)
    click = tracker.clicks.get()
    assert (click.adid, click.device_id, click.click_id, click.user_agent) == (ADID, "", "", "")
    assert click.parameters == {"sub2": "ok"}


def test_clicks_past_the_limit_of_their_address_or_tracker_still_redirect_but_are_not_recorded(
    client, app, partner, settings, fresh_rate_limit
):
    settings.CLICK_RATE_LIMIT_PER_IP_PER_MINUTE = 2
    settings.CLICK_RATE_LIMIT_PER_TRACKER_PER_MINUTE = 4
    tracker = factories.make_tracker(app, partner)
    other = factories.make_tracker(app, partner)

    def click(address, target=tracker):
        # Inside one minute's window whatever the real time: a window's turn would reset the counts.
        with clock.frozen(datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)):
            response = client.get(f"/t/{target.id}?adid={ADID}", REMOTE_ADDR=address)
        assert (response.status_code, response["Location"]) == (302, target.destination_url)

    for _ in range(3):
        click("198.51.100.1")
    assert tracker.clicks.count() == 2  # the address's limit
    click("198.51.100.1", target=other)
    assert not other.clicks.exists()  # the address's limit covers every tracker
    for address in ("198.51.100.2", "198.51.100.3", "198.51.100.4"):
        click(address)
    assert tracker.clicks.count() == 4  # the tracker's limit; the refused third click did not count
    assert sorted(tracker.clicks.values_list("ip", flat=True)) == [
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
    ]
    click("198.51.100.5", target=other)
    assert other.clicks.count() == 1  # each tracker its own budget


@pytest.mark.parametrize(
    ("proxies", "forwarded", "seen"),
    [
        (0, "203.0.113.9", "10.0.0.2"),  # no proxy trusted: the connection's address
        (1, "203.0.113.9", "203.0.113.9"),  # the load balancer's entry
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # what the client wrote itself is not taken
        (2, "6.6.6.6, 203.0.113.9, 198.51.100.7", "203.0.113.9"),  # a CDN, then the load balancer
        (2, "203.0.113.9", "203.0.113.9"),  # fewer entries than proxies: the farthest one
        (1, "not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_behind_trusted_proxies_the_callers_ip_is_read_from_x_forwarded_for(
    client, key, app, partner, settings, fresh_rate_limit, proxies, forwarded, seen
):
    settings.TRUSTED_PROXIES = proxies
    settings.CLICK_RATE_LIMIT_PER_IP_PER_MINUTE = 1
    tracker = factories.make_tracker(app, partner)
    through_proxy = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": forwarded}
    assert post(client, key, event(), **through_proxy).status_code == 202
    assert Event.objects.get().ip == seen
    client.get(f"/t/{tracker.id}?adid={ADID}", **through_proxy)
    assert tracker.clicks.get().ip == seen
    # The per-IP click limit counts that address: another caller behind the same proxy has its own.
    other_caller = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "192.0.2.44"}
    client.get(f"/t/{tracker.id}?adid={ADID}", **other_caller)
    assert tracker.clicks.count() == (2 if proxies else 1)


def test_unknown_tracker_is_404_and_records_nothing(client, app, partner):
    factories.make_tracker(app, partner)
    assert client.get("/t/trk_nope?adid=" + ADID).status_code == 404
    assert not app.clicks.exists()


@pytest.mark.django_db(transaction=True)
def test_database_down_gives_503_and_stores_nothing(app):
    if connection.vendor != "postgresql":
        pytest.skip("a file database cannot be unreachable; checked on PostgreSQL")
    key = app_issue_api_key(app=app)
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    try:
        response = post(Client(), key, event())
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "nothing was stored" in response.json()["detail"]
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_identical_requests_at_the_same_moment_store_one_event(app):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter; SQLite serialises them")
    key = app_issue_api_key(app=app)
    for round_number in range(5):
        barrier = threading.Barrier(2)
        codes = []

        def send(round_number=round_number, barrier=barrier, codes=codes):
            barrier.wait()
            codes.append(post(Client(), key, event(event_id=f"same-{round_number}")).status_code)
            connection.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes) == [200, 202], codes
        assert Event.objects.filter(event_id=f"same-{round_number}").count() == 1
    assert Device.objects.filter(app=app).count() == 1


def test_rotating_or_deactivating_a_key_takes_effect_at_once_in_this_process(client, key, app):
    assert post(client, key, event(event_id="a")).status_code == 202  # the app is now cached
    new_key = app_issue_api_key(app=app)
    assert post(client, key, event(event_id="b")).status_code == 401
    assert post(client, new_key, event(event_id="b")).status_code == 202
    app.is_active = False
    app.save()
    assert post(client, new_key, event(event_id="c")).status_code == 401


def test_a_newly_declared_custom_event_is_accepted_at_once(client, key, app):
    assert post(client, key, event(event="tutorial_done")).status_code == 400
    app.custom_events.create(name="tutorial_done")
    assert post(client, key, event(event="tutorial_done")).status_code == 202
