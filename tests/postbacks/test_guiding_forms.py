"""Forms that guide (issue 17 §5): each page shows what applies, says what to do next, and
the delivery log answers support's questions at a glance."""

from datetime import UTC, datetime
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.messages import get_messages
from django.urls import reverse

from events.services import EventInput
from partners.models import Partner
from postbacks.forms import SESSION_BEGIN_RULE
from postbacks.ingest import events_ingest
from postbacks.models import Delivery, PostbackConfiguration
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
ADD = "admin:postbacks_postbackconfiguration_add"
POSTBACK_DEFAULTS = {"status": "active", "delay_seconds": 0, "retry_attempts": 3, "method": "GET"}


def fields_of(response) -> set[str]:
    """The fields the page shows."""
    assert response.status_code == 200
    return set(flatten_fieldsets(response.context["adminform"].fieldsets))


def test_the_postback_form_shows_only_the_part_of_the_chosen_kind(client, manager, app, partner):
    network = factories.make_partner_configuration(app, partner)
    analytics = factories.make_partner_configuration(
        app, factories.make_partner("insight", kind=Partner.Kind.ANALYTICS)
    )
    client.force_login(manager)
    add = reverse(ADD)

    custom = client.get(add, {"app": app.pk, "kind": "custom"})
    assert {"destination_url", "method", "macros", "signing_secret", "supply_network_data"} <= fields_of(custom)
    assert not {"partner_configuration", "partner_event_name", "delivery_method"} & fields_of(custom)
    assert "Network Only" not in custom.content.decode()

    certified = client.get(add, {"app": app.pk, "kind": "certified", "partner_configuration": network.pk})
    assert {"partner_configuration", "partner_event_name", "delivery_method"} <= fields_of(certified)
    assert not {"destination_url", "macros", "signing_secret", "supply_network_data"} & fields_of(certified)

    # An analytics partner: supply network data applies, the delivery method does not.
    to_analytics = client.get(add, {"app": app.pk, "kind": "certified", "partner_configuration": analytics.pk})
    assert "supply_network_data" in fields_of(to_analytics) and "delivery_method" not in fields_of(to_analytics)

    # No kind chosen yet: both parts, marked for the script that shows the chosen one live.
    page = client.get(add, {"app": app.pk})
    text = page.content.decode()
    assert "postback-kind-certified" in text and "postback-kind-custom" in text
    assert "postbacks/admin.js" in text and "Choose the kind first" in text
    assert "data-partner-kinds" in text

    # A saved custom postback: its own part only, and no "Network Only" anywhere, the list included.
    postback = factories.make_custom_postback(app)
    change = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]))
    assert "destination_url" in fields_of(change) and "delivery_method" not in fields_of(change)
    assert "Network Only" not in change.content.decode()
    certified_postback = factories.make_certified_postback(network)
    changelist = client.get(reverse("admin:postbacks_postbackconfiguration_changelist")).context["cl"]
    assert changelist.model_admin.delivery_method_display(postback) == "—"
    assert changelist.model_admin.delivery_method_display(certified_postback) == "Network Only"

    # ?kind= switches a saved postback's form (the script reloads with it when the kind changes).
    switched = client.get(
        reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]), {"kind": "certified"}
    )
    assert "partner_configuration" in fields_of(switched) and "destination_url" not in fields_of(switched)
    assert switched.context["adminform"].form.initial["kind"] == "certified"


def test_a_custom_postback_saved_from_the_kind_first_form_keeps_the_hidden_parts_untouched(client, manager, app):
    client.force_login(manager)
    data = {**POSTBACK_DEFAULTS, "app": app.pk, "event": "install", "kind": "custom"}
    data.update(destination_url="https://warehouse.acme.test/in", delivery_method="all", partner_event_name="X")
    response = client.post(reverse(ADD) + f"?app={app.pk}", data)
    assert response.status_code == 302
    postback = PostbackConfiguration.objects.get()
    assert (postback.partner_event_name, postback.delivery_method) == ("", "network_only")  # posted, not applied


def test_macros_are_grouped_and_filterable_and_the_session_begin_rule_is_explained(client, manager, app):
    client.force_login(manager)
    page = client.get(reverse(ADD), {"app": app.pk, "kind": "custom"})
    choices = page.context["adminform"].form.fields["macros"].choices
    assert [group for group, _ in choices] == [
        "Device identifiers",
        "Tracking and consent",
        "Event",
        "App",
        "Attribution",
    ]
    assert "adid" in [name for name, _ in choices[0][1]]
    text = unescape(page.content.decode())
    assert 'class="macro-choices"' in text  # the script puts its filter box above it
    assert SESSION_BEGIN_RULE in text
    assert "never in the first 24 hours" in SESSION_BEGIN_RULE


def test_the_preview_sits_near_the_top(client, manager, app):
    postback = factories.make_custom_postback(app, macros=["adid"])
    client.force_login(manager)
    text = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert text.index("Preview: the request") < text.index("Custom postback (your own endpoint)")
    assert "GET https://hooks.acme.test/in?adid=" in text


def test_saving_a_postback_identical_to_another_warns(client, manager, app):
    existing = factories.make_custom_postback(app, title="Warehouse")
    client.force_login(manager)
    data = {**POSTBACK_DEFAULTS, "app": app.pk, "event": "install", "kind": "custom"}
    response = client.post(reverse(ADD), {**data, "destination_url": existing.destination_url}, follow=True)
    warnings = [str(message) for message in get_messages(response.wsgi_request) if message.level_tag == "warning"]
    assert PostbackConfiguration.objects.count() == 2
    assert any("identical to" in text and "Warehouse" in text for text in warnings), warnings
    # Another destination: no warning.
    response = client.post(reverse(ADD), {**data, "destination_url": "https://other.acme.test/in"}, follow=True)
    assert not [message for message in get_messages(response.wsgi_request) if "identical" in str(message)]


def test_a_partner_configuration_shows_the_partners_fields_once_picked_then_offers_its_postbacks(
    client, manager, support, app, partner
):
    client.force_login(manager)
    add = reverse("admin:postbacks_partnerconfiguration_add")
    page = client.get(add, {"app": app.pk})
    assert 'data-reload-on-change="1"' in page.content.decode()  # the partner select reloads with ?partner=
    # As the script reloads it once the partner is picked: its fields, with hints, before any save.
    picked = client.get(add, {"app": app.pk, "partner": partner.pk}).content.decode()
    assert 'name="field__app_id"' in picked
    assert "4 to 10 digits, from the Acme console. Example: 123456" in picked
    assert "Acme Ads: network-specific fields" in picked

    response = client.post(add, {"app": app.pk, "partner": partner.pk, "field__app_id": "4242"}, follow=True)
    config = app.partner_configurations.get()
    infos = " ".join(str(message) for message in get_messages(response.wsgi_request))
    assert "Add install postback" in infos and "Add purchase postback" in infos
    assert "Add session_begin postback" not in infos  # the partner has no template for it
    link = next(href for href in unescape(infos).split('"') if "event=install" in href)
    assert parse_qs(urlsplit(link).query) == {
        "app": [str(app.pk)],
        "event": ["install"],
        "kind": ["certified"],
        "partner_configuration": [str(config.pk)],
    }
    prefilled = client.get(link)
    assert prefilled.context["adminform"].form.initial["partner_configuration"] == str(config.pk)

    postback = factories.make_certified_postback(config)
    change = client.get(reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])).content.decode()
    assert reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]) in change
    assert "Add purchase postback" in change and "Add install postback" not in change
    client.force_login(support)  # reads the list; may not add postbacks, so is not offered to
    read_only = client.get(reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])).content.decode()
    assert reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]) in read_only
    assert "Add purchase postback" not in read_only


@pytest.fixture
def log(app, partner, receiver, allow_private):
    """A failed delivery (HTTP 404 twice) and a delivered one, sent at T0."""
    receiver.replies = [Reply(status=404, body="no such app"), Reply(status=200, body="ok")]
    with clock.frozen(T0):
        factories.make_custom_postback(app, url=receiver.url + "/a", title="first", retry_attempts=0)
        factories.make_custom_postback(app, url="http://localhost:1/b", title="second", retry_attempts=2)
        data = EventInput(event_id="e1", name="install", device_ids={"adid": "dev-adid-77"}, occurred_at=T0)
        event = events_ingest(app=app, items=[data])[0].event
        deliveries_send(claim=deliveries_claim(limit=10))
    return {
        "failed": Delivery.objects.get(event=event, configuration__title="first"),
        "second": Delivery.objects.get(event=event, configuration__title="second"),
    }


def search(client, term: str) -> set[int]:
    return {
        delivery.pk
        for delivery in client.get(reverse("admin:postbacks_delivery_changelist"), {"q": term})
        .context["cl"]
        .result_list
    }


def test_the_delivery_log_shows_the_last_error_and_coloured_statuses_in_iso_dates(client, support, log):
    client.force_login(support)
    page = client.get(reverse("admin:postbacks_delivery_changelist")).content.decode()
    assert "HTTP 404" in page  # the last error column
    assert 'class="delivery-status delivery-status-failed"' in page
    assert "postbacks/admin.css" in page
    assert "2026-11-03T10:00:00Z" in page  # created_at, ISO 8601 UTC
    detail = client.get(reverse("admin:postbacks_delivery_change", args=[log["failed"].pk])).content.decode()
    assert "2026-11-03T10:00:00Z" in detail
    assert "a.m." not in detail and "p.m." not in detail


def test_search_the_log_by_short_id_host_and_device_id(client, support, log, other_app):
    client.force_login(support)
    failed, second = log["failed"], log["second"]
    assert search(client, str(failed.delivery_id)[:8]) == {failed.pk}
    assert search(client, str(failed.delivery_id)) == {failed.pk}
    assert search(client, "localhost") == {second.pk}
    assert search(client, "http://localhost:1/whatever") == {second.pk}
    assert search(client, "127.0.0.1") == {failed.pk}
    assert search(client, "dev-adid-77") == {failed.pk, second.pk}
    assert search(client, "e1") == {failed.pk, second.pk}
    assert search(client, "nothing-like-it") == set()


def test_the_search_reads_through_indexes_only(client, support, log):
    """No upper(...::text) over the log: ids, identifiers and events are compared as stored."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(support)
    with CaptureQueriesContext(connection) as queries:
        search(client, str(log["failed"].delivery_id)[:8])
        search(client, "dev-adid-77")
    sql = " ".join(query["sql"] for query in queries.captured_queries).upper()
    assert "UPPER(" not in sql and "LIKE" not in sql


def test_resend_button_on_the_delivery_page(client, support, log):
    failed = log["failed"]
    url = reverse("admin:postbacks_delivery_change", args=[failed.pk])
    client.force_login(support)
    assert reverse("admin:postbacks_delivery_resend", args=[failed.pk]) in client.get(url).content.decode()
    response = client.post(reverse("admin:postbacks_delivery_resend", args=[failed.pk]))
    assert response.status_code == 302 and response.url == url
    failed.refresh_from_db()
    assert (failed.status, failed.max_attempts) == ("scheduled", 2)
    assert client.get(reverse("admin:postbacks_delivery_resend", args=[failed.pk])).status_code == 403


def test_attempts_are_headed_attempt_n_of_the_real_maximum(client, support, log):
    client.force_login(support)
    failed = client.get(reverse("admin:postbacks_delivery_change", args=[log["failed"].pk])).content.decode()
    assert "Attempt 1 of 1" in failed
    second = client.get(reverse("admin:postbacks_delivery_change", args=[log["second"].pk])).content.decode()
    assert "Attempt 1 of 3" in second  # 1 + its 2 retry attempts
    assert "Attempt: Attempt" not in second


def test_one_date_format_iso_8601_utc_in_pages_that_write_their_own(client, manager, support, app, log):
    type(app).objects.filter(pk=app.pk).update(api_key_rotated_at=T0)
    client.force_login(manager)
    page = client.get(reverse("admin:events_app_change", args=[app.pk])).content.decode()
    assert "rotated 2026-11-03T10:00:00Z" in page
    client.force_login(support)
    attempts = client.get(reverse("admin:postbacks_delivery_change", args=[log["failed"].pk])).content.decode()
    assert "Attempt 1 of 1 at 2026-11-03T10:00:00Z" in attempts
    # The resend form takes the same format.
    response = client.post(
        reverse("admin:postbacks_delivery_resend_failed"),
        {"configuration": log["failed"].configuration_id, "since": "2026-11-03T09:00:00Z"},
    )
    assert response.status_code == 302
