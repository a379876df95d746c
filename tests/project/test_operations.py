"""/healthz and /metrics: what operators and Prometheus see."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from events.services import app_issue_api_key
from postbacks.leases import claim_lease
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db


def metric_values(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def post_install(client, key: str, event_id: str):
    return client.post(
        "/api/v1/events",
        {"event_id": event_id, "event": "install", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_healthz_reports_reachable_database_and_broker_and_the_backlog(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "deliveries": "ok"}
    assert body["backlog"] == 0 and body["oldest_due_seconds"] == 0


def test_healthz_is_503_when_deliveries_stall(client, app, settings):
    settings.HEALTH_MAX_BACKLOG_AGE = 60
    factories.make_custom_postback(app, url="https://hooks.acme.test/in")
    assert post_install(client, app_issue_api_key(app=app), "e-1").status_code == 202
    Delivery.objects.update(due_at=timezone.now() - timedelta(minutes=5))  # nobody sent it
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["backlog"] == 1
    assert body["checks"]["deliveries"].startswith("stalled: the oldest due delivery waits 300 s")


def test_claimed_deliveries_no_worker_sends_count_in_the_backlog_from_their_due_time(client, app, settings):
    """Workers stopped, the dispatcher still running: it claims the due delivery, and claims it
    again each time the lease runs out. The delivery still waits, and health must say so."""
    settings.HEALTH_MAX_BACKLOG_AGE = 60
    factories.make_custom_postback(app, url="https://hooks.acme.test/in")
    start = timezone.now()
    with clock.frozen(start) as moving_clock:
        assert post_install(client, app_issue_api_key(app=app), "e-1").status_code == 202
        due_at = Delivery.objects.get().due_at
        for _ in range(4):  # the dispatcher's claims; no worker takes the tasks up
            assert len(deliveries_claim(limit=10).ids) == 1
            moving_clock.advance(claim_lease() + timedelta(seconds=1))
        waited = (moving_clock.now - due_at).total_seconds()
        assert len(deliveries_claim(limit=10).ids) == 1  # claimed right now, as the dispatcher would
        response = client.get("/healthz")
        gauges = metric_values(client)
    assert Delivery.objects.get().status == Delivery.Status.SENDING
    assert response.status_code == 503
    body = response.json()
    assert body["backlog"] == 1 and body["oldest_due_seconds"] == pytest.approx(waited, abs=0.1)
    assert body["checks"]["deliveries"].startswith(f"stalled: the oldest due delivery waits {waited:.0f} s")
    assert gauges[("postbacks_backlog_deliveries", ())] == 1
    assert gauges[("postbacks_backlog_oldest_due_seconds", ())] == pytest.approx(waited, abs=0.1)


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_when_the_database_is_unreachable():
    if connection.vendor != "postgresql":
        pytest.skip("a file database cannot be unreachable; checked on PostgreSQL")
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    try:
        response = Client().get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("unreachable")
    assert checks["deliveries"] == "unknown: the database is unreachable"


def test_metrics_count_events_deliveries_and_attempts(
    client, app, receiver, allow_private, django_capture_on_commit_callbacks
):
    factories.make_custom_postback(app, url=receiver.url + "/in")
    key = app_issue_api_key(app=app)
    before = metric_values(client)
    with django_capture_on_commit_callbacks(execute=True):  # counted once the event is committed
        assert post_install(client, key, "m-1").status_code == 202
        assert post_install(client, key, "m-1").status_code == 200  # a duplicate is not counted again
    queued = metric_values(client)
    assert deliveries_send(claim=deliveries_claim(limit=10)) == {"delivered": 1}
    after = metric_values(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("postbacks_events_accepted_total", app=str(app.pk), event="install") == 1
    assert delta("postbacks_deliveries_created_total", partner="custom", status="scheduled") == 1
    assert delta("postbacks_delivery_attempts_total", partner="custom", outcome="delivered") == 1
    assert delta("postbacks_attempt_duration_seconds_count", partner="custom") == 1
    assert delta("postbacks_delivery_latency_seconds_count", partner="custom") == 1
    assert delta("postbacks_delivery_latency_seconds_bucket", partner="custom", le="+Inf") == 1
    assert queued[("postbacks_backlog_deliveries", ())] == 1
    assert after[("postbacks_backlog_deliveries", ())] == 0


def test_metrics_token_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
