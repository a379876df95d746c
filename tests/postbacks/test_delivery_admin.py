"""Support staff answer "what did we send, when, and what did the partner say?" in the admin."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from events.services import EventInput
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from project.ingest import event_ingest
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
            made[prefix + "event"] = event_ingest(app=target, data=data).event
            if not prefix:
                deliveries_send(ids=deliveries_claim(limit=10))
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
