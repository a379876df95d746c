"""Support staff answer "what did we send, when, and what did the partner say?" in the admin."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from events.services import EventInput
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def logged(app, other_app, partner, receiver, allow_private):
    """A delivered, a failed and a skipped delivery in each of two accounts."""
    receiver.replies = [Reply(status=200, body='{"ok":true}'), Reply(status=404, body="no such app")]
    made = {}
    with clock.frozen(T0):
        for prefix, target in (("", app), ("other_", other_app)):
            factories.make_custom_postback(target, url=receiver.url + "/a", title=f"{prefix}first", retry_attempts=0)
            factories.make_custom_postback(target, url=receiver.url + "/b", title=f"{prefix}second", retry_attempts=0)
            factories.make_certified_postback(
                factories.make_partner_configuration(target, partner), delivery_method="network_only"
            )
            data = EventInput(
                event_id=f"{prefix}e1", name="install", device_ids={"device_id": f"{prefix}d"}, occurred_at=T0
            )
            made[prefix + "event"] = events_ingest(app=target, items=[data])[0].event
            if not prefix:
                deliveries_send(claim=deliveries_claim(limit=10))
    return made


def test_log_pages_load_for_both_roles_with_request_and_response(client, manager, support, logged):
    failed = Delivery.objects.get(event=logged["event"], status="failed")
    for user in (manager, support):
        client.force_login(user)
        page = client.get(reverse("admin:postbacks_delivery_changelist")).content.decode()
        assert str(failed.delivery_id)[:8] in page
        detail = client.get(reverse("admin:postbacks_delivery_change", args=[failed.pk])).content.decode()
        assert "HTTP 404" in detail and "no such app" in detail
        assert "X-Delivery-Id" in detail
        assert 'name="_save"' not in detail


def test_the_log_is_confined_to_the_users_accounts(client, support, logged):
    client.force_login(support)
    listed = client.get(reverse("admin:postbacks_delivery_changelist")).context["cl"].result_list
    assert {delivery.app.name for delivery in listed} == {"Rocket"}
    foreign = Delivery.objects.filter(event=logged["other_event"]).first()
    response = client.get(reverse("admin:postbacks_delivery_change", args=[foreign.pk]), follow=True)
    assert b"doesn\xe2\x80\x99t exist" in response.content
    assert "Rival" not in client.get(reverse("admin:postbacks_delivery_changelist")).content.decode()


@pytest.mark.parametrize(
    ("query", "statuses"),
    [("status=failed", {"failed"}), ("response=4xx", {"failed"}), ("response=2xx", {"delivered"})],
)
def test_filters(client, support, logged, query, statuses):
    client.force_login(support)
    listed = client.get(reverse("admin:postbacks_delivery_changelist") + "?" + query).context["cl"].result_list
    assert {delivery.status for delivery in listed} == statuses


def test_search_by_delivery_id_and_event_id(client, support, logged):
    client.force_login(support)
    delivery = Delivery.objects.filter(event=logged["event"]).first()
    for term in (str(delivery.delivery_id), "e1"):
        listed = client.get(reverse("admin:postbacks_delivery_changelist"), {"q": term}).context["cl"].result_list
        assert delivery in list(listed)


def test_support_can_resend_but_not_edit(client, support, logged, receiver):
    failed = Delivery.objects.get(event=logged["event"], status="failed")
    client.force_login(support)
    client.post(reverse("admin:postbacks_delivery_changelist"), {"action": "resend", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == "scheduled"
    assert client.post(reverse("admin:postbacks_delivery_change", args=[failed.pk]), {}).status_code == 403


def test_event_page_says_why_each_postback_did_or_did_not_fire(client, support, logged, app):
    factories.make_custom_postback(app, event="purchase", url="https://a.test/p")
    client.force_login(support)
    page = client.get(reverse("admin:events_event_change", args=[logged["event"].pk])).content.decode()
    assert "Delivered" in page and "Failed" in page
    assert "unattributed (organic)" in page  # the certified Network Only postback
    assert "Fires on purchase, not on install." in page


def test_send_test_postback_shows_the_response_at_once_and_stores_nothing(
    client, manager, app, receiver, allow_private
):
    postback = factories.make_custom_postback(app, url=receiver.url + "/t", macros=["adid"])
    receiver.replies = [Reply(status=201, body='{"received":true}')]
    client.force_login(manager)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "Send test postback" in page
    response = client.post(reverse("admin:postbacks_postbackconfiguration_send_test", args=[postback.pk]))
    text = response.content.decode()
    assert "HTTP 201" in text and "&quot;received&quot;: true" in text and "Delivered" in text
    request = receiver.wait_for(1)[0]
    assert request.headers["x-postback-test"] == "1"
    assert request.query == {"adid": ["38400000-8cf0-11bd-b23e-10b96e40000d"]}
    assert not Delivery.objects.exists()
    assert client.get(reverse("admin:postbacks_postbackconfiguration_send_test", args=[postback.pk])).status_code == 403


def test_a_test_postback_is_signed_as_a_delivery_is_and_the_page_shows_the_headers_sent(
    client, manager, app, receiver, allow_private
):
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    postback = factories.make_custom_postback(
        app, url=receiver.url + "/t", method="POST", macros=["adid"], signing_secret=secret
    )
    client.force_login(manager)
    page = client.post(reverse("admin:postbacks_postbackconfiguration_send_test", args=[postback.pk])).content.decode()
    request = receiver.wait_for(1)[0]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.{request.body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    assert request.headers["webhook-id"] == request.headers["x-delivery-id"]
    for header in ("X-Delivery-Id", "X-Postback-Test", "webhook-id", "webhook-timestamp", "webhook-signature"):
        assert f"{header}: {request.headers[header.lower()]}" in page
    assert secret not in page


def test_resend_every_failed_delivery_of_a_partner_since_a_time(client, support, logged, app):
    failed = Delivery.objects.get(event=logged["event"], status="failed")
    client.force_login(support)
    url = reverse("admin:postbacks_delivery_resend_failed")
    assert client.get(url).status_code == 200
    response = client.post(url, {"configuration": failed.configuration_id, "since": "2026-11-03 09:00"})
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == "scheduled"
    other = Delivery.objects.filter(event=logged["other_event"]).first()
    response = client.post(url, {"configuration": other.configuration_id, "since": "2026-11-03 09:00"})
    assert "Select a valid choice" in response.content.decode()  # another account's: not even offered
    assert "Choose either a configuration or a partner" in client.post(url, {"since": "2026-11-03"}).content.decode()


def test_signing_secret_is_validated_never_shown_and_kept(client, manager, app):
    postback = factories.make_custom_postback(app, method="POST")
    client.force_login(manager)
    url = reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])
    data = {
        "event": "install",
        "kind": "custom",
        "status": "active",
        "destination_url": postback.destination_url,
        "method": "POST",
        "delivery_method": "network_only",
        "delay_seconds": 0,
        "retry_attempts": 3,
    }
    bad = client.post(url, {**data, "signing_secret": "hunter2"})
    assert "whsec_" in str(bad.context["adminform"].form.errors["signing_secret"])
    secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    assert client.post(url, {**data, "signing_secret": secret}).status_code == 302
    assert client.post(url, {**data, "signing_secret": "", "retry_attempts": 4}).status_code == 302
    postback.refresh_from_db()
    assert (postback.signing_secret, postback.retry_attempts) == (secret, 4)
    assert secret not in client.get(url).content.decode()
    history = client.get(reverse("admin:postbacks_postbackconfiguration_history", args=[postback.pk])).content
    assert secret.encode() not in history and b"secret, not shown" in history


def test_purge_keeps_recent_and_unfinished_deliveries(logged):
    from datetime import timedelta

    from django.core.management import call_command

    total = Delivery.objects.count()
    with clock.frozen(T0 + timedelta(days=10)):
        call_command("purge_deliveries", "--older-than", "30")
        assert Delivery.objects.count() == total
        Delivery.objects.filter(event=logged["other_event"]).update(status="scheduled")
        call_command("purge_deliveries", "--older-than", "1")
    assert set(Delivery.objects.values_list("status", flat=True)) == {"scheduled"}


def test_statistics_page_per_partner_and_configuration(client, support, logged, partner):
    client.force_login(support)
    with clock.frozen(T0 + timedelta(minutes=5)):
        page = client.get(reverse("admin:postbacks_delivery_stats"))
    stats = page.context["stats"]
    assert stats.by_status == {"delivered": 1, "failed": 1, "skipped": 1}  # this account's only
    assert stats.success_rate == 50.0
    assert stats.response_p50_ms is not None and stats.backlog == 0
    assert stats.failures_by_cause == [("http_4xx", "HTTP 4xx (request refused)", 1, 0)]
    assert [
        (point["delivered"], point["failed"]) for point in stats.series if point["delivered"] or point["failed"]
    ] == [(1, 1)]
    assert 'data-chart="chart-outcomes-data"' in page.content.decode()
    configuration = Delivery.objects.get(event=logged["event"], status="delivered").configuration_id
    with clock.frozen(T0 + timedelta(minutes=5)):
        one = client.get(reverse("admin:postbacks_delivery_stats"), {"configuration": configuration})
        by_partner = client.get(reverse("admin:postbacks_delivery_stats"), {"partner": partner.pk})
    assert one.context["stats"].by_status == {"delivered": 1}
    assert by_partner.context["stats"].by_status == {"skipped": 1}
