"""An account manager follows the seeds' flow in the admin; every bad setting gets a clear message."""

from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from events.models import CustomEvent
from postbacks.models import PartnerConfiguration, PostbackConfiguration
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
POSTBACK_DEFAULTS = {
    "status": "active",
    "delivery_method": "network_only",
    "delay_seconds": 0,
    "retry_attempts": 3,
    "method": "GET",
}


def form_errors(response) -> dict:
    assert response.status_code == 200, "expected the form back with errors"
    return {name: " ".join(messages) for name, messages in response.context["adminform"].form.errors.items()}


def test_add_a_configuration_asks_for_the_partners_fields_then_saves_them(client, manager, app, partner):
    client.force_login(manager)
    url = reverse("admin:postbacks_partnerconfiguration_add")
    page = client.get(f"{url}?app={app.pk}")
    assert "field__app_id" not in page.content.decode()  # no partner chosen yet

    response = client.post(f"{url}?app={app.pk}", {"app": app.pk, "partner": partner.pk})
    assert "Acme App ID is required." in form_errors(response)["field__app_id"]
    page = response.content.decode()
    assert 'name="field__app_id"' in page
    # The hint and the example, as help and placeholder; the pattern is never shown.
    assert "4 to 10 digits, from the Acme console. Example: 123456" in page
    assert 'placeholder="123456"' in page
    assert "{4,10}" not in page
    assert not PartnerConfiguration.objects.exists()

    response = client.post(url, {"app": app.pk, "partner": partner.pk, "field__app_id": "12x"})
    assert form_errors(response)["field__app_id"] == (
        "Acme App ID '12x' is not in the expected format. 4 to 10 digits, from the Acme console. For example: 123456."
    )
    assert "{4,10}" not in response.content.decode()

    response = client.post(url, {"app": app.pk, "partner": partner.pk, "field__app_id": "4242", "field__token": "tk"})
    assert response.status_code == 302
    config = PartnerConfiguration.objects.get()
    assert config.field_values == {"app_id": "4242", "token": "tk"}


def test_secret_fields_are_never_shown_and_kept_when_left_empty(client, manager, support, app, partner):
    config = factories.make_partner_configuration(app, partner, app_id="1111", token="topsecret")
    url = reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])
    client.force_login(manager)
    assert "topsecret" not in client.get(url).content.decode()
    response = client.post(url, {"field__app_id": "2222", "field__token": ""})
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.field_values == {"app_id": "2222", "token": "topsecret"}
    client.post(url, {"field__app_id": "2222", "field__token": "newsecret"})
    history = " ".join(entry.get_change_message() for entry in LogEntry.objects.filter(object_id=str(config.pk)))
    assert "Acme App ID: 1111 → 2222" in history
    assert "secret, not shown" in history and "newsecret" not in history and "topsecret" not in history
    client.force_login(support)
    page = client.get(url).content.decode()
    assert "2222" in page and "newsecret" not in page and "(secret)" in page


def test_manager_creates_a_certified_postback_and_sees_the_exact_request(client, manager, app, partner):
    config = factories.make_partner_configuration(app, partner, app_id="5555")
    client.force_login(manager)
    add = reverse("admin:postbacks_postbackconfiguration_add")
    page = client.get(f"{add}?app={app.pk}&event=install&kind=certified")
    form = page.context["adminform"].form
    assert [value for value, _ in form.fields["event"].choices] == app.event_names()
    assert form.initial["kind"] == "certified"
    response = client.post(
        add,
        {
            **POSTBACK_DEFAULTS,
            "app": app.pk,
            "event": "install",
            "kind": "certified",
            "partner_configuration": config.pk,
            "delivery_method": "all",
            "delay_seconds": 30,
            "retry_attempts": 5,
        },
    )
    assert response.status_code == 302, form_errors(response)
    postback = PostbackConfiguration.objects.get()
    assert (postback.delivery_method, postback.delay_seconds, postback.retry_attempts) == ("all", 30, 5)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "GET https://postback.acme.test/5555/install?" in page
    assert "gaid=38400000-8cf0-11bd-b23e-10b96e40000d" in page
    assert "evt=APP_INSTALL" in page


def test_manager_creates_a_custom_postback_with_macros(client, manager, app):
    client.force_login(manager)
    response = client.post(
        reverse("admin:postbacks_postbackconfiguration_add"),
        {
            **POSTBACK_DEFAULTS,
            "app": app.pk,
            "event": "purchase",
            "kind": "custom",
            "destination_url": "https://warehouse.acme.test/in/{event_name}",
            "method": "POST",
            "macros": ["adid", "revenue", "currency"],
            "title": "Purchases to the warehouse",
            "match_event": "level_complete",
            "supply_network_data": "on",
            "retry_attempts": 10,
            "delay_seconds": 600,
        },
    )
    assert response.status_code == 302, form_errors(response)
    postback = PostbackConfiguration.objects.get()
    assert postback.macros == ["adid", "revenue", "currency"]
    assert postback.fires_on == "level_complete"
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "POST https://warehouse.acme.test/in/level_complete?adid=" in page
    assert "&quot;revenue&quot;: &quot;4.99&quot;" in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"retry_attempts": 11}, "retry_attempts", "Select a valid choice"),
        ({"destination_url": "ftp://warehouse.acme.test/"}, "destination_url", "must start with https:// or http://"),
        ({"destination_url": "http://127.0.0.1:8000/in"}, "destination_url", "loopback address"),
        ({"destination_url": "http://10.0.0.5/in"}, "destination_url", "private address"),
        ({"destination_url": "https://a.test/{shoe_size}"}, "destination_url", "{shoe_size} is not a known macro"),
        ({"destination_url": "http://{event_value}/x"}, "destination_url", "stands in the scheme, host or port"),
        ({"signing_secret": SECRET}, "signing_secret", "a GET has none"),
        ({"macros": ["shoe_size"]}, "macros", "Select a valid choice"),
        ({"event": "refund"}, "event", "Select a valid choice"),
        ({"kind": "certified"}, "partner_configuration", "needs a partner configuration"),
    ],
)
def test_every_invalid_setting_is_refused_with_a_message(client, manager, app, changes, field, message):
    client.force_login(manager)
    data = {
        **POSTBACK_DEFAULTS,
        "app": app.pk,
        "event": "install",
        "kind": "custom",
        "destination_url": "https://warehouse.acme.test/in",
        **changes,
    }
    response = client.post(reverse("admin:postbacks_postbackconfiguration_add"), data)
    assert message in form_errors(response)[field]
    assert not PostbackConfiguration.objects.exists()


def test_history_records_who_changed_which_setting_from_what_to_what(client, manager, app):
    postback = factories.make_custom_postback(app, macros=["adid"])
    client.force_login(manager)
    url = reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])
    response = client.post(
        url,
        {
            **POSTBACK_DEFAULTS,
            "event": "install",
            "kind": "custom",
            "destination_url": postback.destination_url,
            "macros": ["adid", "idfa"],
            "retry_attempts": 7,
            "status": "inactive",
        },
    )
    assert response.status_code == 302, form_errors(response)
    entry = LogEntry.objects.get(object_id=str(postback.pk))
    assert entry.user == manager
    message = entry.get_change_message()
    assert "Retry attempts: 3 attempts → 7 attempts" in message
    assert "Status: Active → Inactive" in message
    assert "Macros: adid → adid, idfa" in message
    history = client.get(reverse("admin:postbacks_postbackconfiguration_history", args=[postback.pk])).content.decode()
    assert "Retry attempts: 3 attempts → 7 attempts" in history


def test_preview_explains_a_broken_certified_postback(client, manager, app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    partner.templates.filter(event="install").delete()
    client.force_login(manager)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "has no template for install any more" in page


def test_add_forms_offer_nothing_of_another_account_whatever_the_url_says(client, manager, app, other_app, partner):
    """Every admin form that reads an id from the URL (?app=, ?account=, ?partner=) builds its
    choices from the user's accounts only: another account's ids find nothing."""
    CustomEvent.objects.create(app=other_app, name="rival_secret_launch")
    factories.make_partner_configuration(other_app, partner)  # "Acme Ads for Rival" must not be offered
    client.force_login(manager)
    pages = {
        "postbacks_postbackconfiguration_add": {"app": other_app.pk, "kind": "custom"},
        "postbacks_partnerconfiguration_add": {"app": other_app.pk, "partner": partner.pk},
        "events_tracker_add": {"app": other_app.pk, "network": partner.pk},
        "events_app_add": {"account": other_app.account_id},
    }
    for name, query in pages.items():
        url = reverse(f"admin:{name}")
        for response in (client.get(url, query), client.post(f"{url}?{urlencode(query)}", query)):
            page = response.content.decode()
            assert response.status_code == 200, name
            assert "rival_secret_launch" not in page, name
            assert other_app.name not in page and other_app.account.name not in page, name


def test_support_sees_the_signing_secret_masked(client, support, app):
    postback = factories.make_custom_postback(app, method="POST", signing_secret=SECRET)
    client.force_login(support)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "•••••• (secret)" in page
    assert SECRET not in page and SECRET.removeprefix("whsec_") not in page


def test_saving_without_touching_the_secret_records_no_secret_change(client, manager, app):
    postback = factories.make_custom_postback(app, method="POST", signing_secret=SECRET)
    client.force_login(manager)
    url = reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])
    data = {**POSTBACK_DEFAULTS, "event": "install", "kind": "custom", "method": "POST"}
    data["destination_url"] = postback.destination_url
    response = client.post(url, {**data, "retry_attempts": 5})
    assert response.status_code == 302, form_errors(response)
    postback.refresh_from_db()
    assert (postback.signing_secret, postback.retry_attempts) == (SECRET, 5)
    message = LogEntry.objects.get(object_id=str(postback.pk)).get_change_message()
    assert "Retry attempts: 3 attempts → 5 attempts" in message and "ecret" not in message

    def latest_change() -> str:
        return LogEntry.objects.filter(object_id=str(postback.pk)).order_by("-pk").first().get_change_message()

    # Typing the same secret again changes nothing either; removing it is recorded, masked.
    data["retry_attempts"] = 5
    assert client.post(url, {**data, "signing_secret": SECRET}).status_code == 302
    assert latest_change() == "No fields changed."
    assert client.post(url, {**data, "remove_signing_secret": "on"}).status_code == 302
    postback.refresh_from_db()
    assert postback.signing_secret == ""
    assert latest_change() == "Changed Signing secret (secret, not shown)."
