"""A partner configuration overrides what its partner's templates send (endpoint base, fixed
parameters) without a code change: rendered, validated, exported and edited in the admin."""

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from events.services import EventInput
from partners.models import PartnerTemplate
from postbacks.config_io import ConfigImportError, config_export, config_import
from postbacks.ingest import events_ingest
from postbacks.models import Delivery, PartnerConfiguration
from postbacks.rendering import RenderError, render_postback
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VALUES = {"event_name": "install", "adid": "gaid-1", "campaign_name": "Autumn", "network_id": "acme_ads"}


def configured(app, partner, **overrides) -> PartnerConfiguration:
    config = factories.make_partner_configuration(app, partner)
    for name, value in overrides.items():
        setattr(config, name, value)
    config.full_clean()
    config.save()
    return config


def test_without_overrides_the_template_is_sent_as_it_is(app, partner):
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, partner))
    url = render_postback(configuration=postback, values=VALUES).url
    assert url.startswith("https://postback.acme.test/12345/install?")


def test_the_endpoint_base_replaces_scheme_and_host_and_keeps_the_templates_path(app, partner):
    config = configured(app, partner, endpoint_base="http://eu.acme.test:8443/relay/")
    request = render_postback(configuration=factories.make_certified_postback(config), values=VALUES)
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "eu.acme.test:8443", "/relay/12345/install")
    assert parse_qs(parts.query)["gaid"] == ["gaid-1"]


def test_fixed_parameters_are_added_to_the_query_and_override_the_templates(app, partner):
    config = configured(app, partner, fixed_parameters={"camp": "fixed campaign", "region": "eu {adid}"})
    request = render_postback(configuration=factories.make_certified_postback(config), values=VALUES)
    query = parse_qs(urlsplit(request.url).query)
    assert query["camp"] == ["fixed campaign"]  # the template's own camp={campaign_name} is replaced
    assert query["region"] == ["eu {adid}"]  # a fixed value is sent as given: no placeholder is filled
    assert query["gaid"] == ["gaid-1"] and query["evt"] == ["APP_INSTALL"]


def test_fixed_parameters_go_in_a_json_body_and_in_the_templates_query_where_it_has_them(app, partner):
    template = partner.templates.get(event="*")
    template.query = {"key": "{fields.app_id}"}
    template.save()
    config = configured(
        app,
        partner,
        endpoint_base="https://proxy.acme.test",
        fixed_parameters={"key": "k-override", "region": "eu", "event": "buy"},
    )
    postback = factories.make_certified_postback(config, event="purchase")
    request = render_postback(configuration=postback, values={**VALUES, "event_name": "purchase", "revenue": "2.5"})
    parts = urlsplit(request.url)
    assert (parts.netloc, parts.path) == ("proxy.acme.test", "/12345/events")
    assert parse_qs(parts.query) == {"key": ["k-override"]}
    assert json.loads(request.body) == {"event": "buy", "revenue": "2.5", "region": "eu"}


def test_fixed_parameters_go_in_a_form_body(app, partner):
    template = partner.templates.get(event="install")
    template.method, template.encoding = "POST", "form"
    template.save()
    config = configured(app, partner, fixed_parameters={"gaid": "fixed", "region": "eu"})
    request = render_postback(configuration=factories.make_certified_postback(config), values=VALUES)
    assert urlsplit(request.url).query == ""
    body = parse_qs(request.body)
    assert body["gaid"] == ["fixed"] and body["region"] == ["eu"] and body["evt"] == ["APP_INSTALL"]


@pytest.mark.parametrize(
    "base, message",
    [
        ("https://{fields.app_id}.acme.test", "no {placeholders}"),
        ("https://acme.test/{adid}", "no {placeholders}"),
        ("ftp://acme.test", "must start with https:// or http://"),
        ("https://user:pw@acme.test", "Credentials in the URL are not allowed"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://10.1.2.3", "private address"),
        ("https://acme.test/x?token=1", "no query or fragment"),
        ("https://acme.test/x#frag", "no query or fragment"),
        ("acme.test/x", "must start with https:// or http://"),
    ],
)
def test_a_bad_endpoint_base_is_refused_with_a_reason(app, partner, base, message):
    config = factories.make_partner_configuration(app, partner)
    config.endpoint_base = base
    with pytest.raises(ValidationError) as error:
        config.full_clean()
    assert message in " ".join(error.value.message_dict["endpoint_base"])


@pytest.mark.parametrize("parameters", [["a"], {"a": 1}, {"": "x"}, {"a": None}])
def test_fixed_parameters_must_be_names_and_text(app, partner, parameters):
    config = factories.make_partner_configuration(app, partner)
    config.fixed_parameters = parameters
    with pytest.raises(ValidationError) as error:
        config.full_clean()
    assert error.value.message_dict["fixed_parameters"] == ["Give an object of parameter name → text value."]


def test_a_base_stored_before_the_rule_is_refused_when_rendering(app, partner):
    config = factories.make_partner_configuration(app, partner)
    postback = factories.make_certified_postback(config)
    PartnerConfiguration.objects.filter(pk=config.pk).update(endpoint_base="https://127.0.0.1")
    postback.refresh_from_db()
    with pytest.raises(RenderError, match=r"endpoint base: 127\.0\.0\.1 is a loopback address"):
        render_postback(configuration=postback, values=VALUES)


def test_overrides_round_trip_through_export_and_import(app, partner):
    config = configured(app, partner, endpoint_base="https://eu.acme.test/v2", fixed_parameters={"region": "eu"})
    exported = config_export()
    [item] = exported["apps"][0]["partner_configurations"]
    assert item["endpoint_base"] == "https://eu.acme.test/v2" and item["fixed_parameters"] == {"region": "eu"}
    PartnerConfiguration.objects.filter(pk=config.pk).update(endpoint_base="", fixed_parameters={})
    summary = config_import(document=exported)
    assert summary.updated == [f"partner configuration {app.name}/acme_ads"]
    assert config_export() == exported
    assert not config_import(document=exported).changed


def test_an_import_with_a_bad_base_names_the_path(app, partner):
    configured(app, partner)
    document = config_export()
    document["apps"][0]["partner_configurations"][0]["endpoint_base"] = "https://acme.test/{adid}"
    with pytest.raises(ConfigImportError) as error:
        config_import(document=document)
    assert "apps[0].partner_configurations[0].endpoint_base: The endpoint base is fixed text: no {placeholders}" in (
        str(error.value)
    )


def test_the_admin_form_edits_and_validates_the_overrides(client, manager, app, partner):
    config = factories.make_partner_configuration(app, partner, app_id="4242")
    url = reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])
    client.force_login(manager)
    page = client.get(url).content.decode()
    assert "Overrides (optional)" in page and 'name="endpoint_base"' in page

    response = client.post(
        url, {"field__app_id": "4242", "endpoint_base": "https://10.0.0.1", "fixed_parameters": '{"region": "eu"}'}
    )
    assert response.status_code == 200
    assert "private address" in " ".join(response.context["adminform"].form.errors["endpoint_base"])
    response = client.post(url, {"field__app_id": "4242", "endpoint_base": "", "fixed_parameters": '["eu"]'})
    assert "Give an object of parameter name" in " ".join(response.context["adminform"].form.errors["fixed_parameters"])

    response = client.post(
        url,
        {"field__app_id": "4242", "endpoint_base": "https://eu.acme.test/v2", "fixed_parameters": '{"region": "eu"}'},
    )
    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.endpoint_base, config.fixed_parameters) == ("https://eu.acme.test/v2", {"region": "eu"})
    postback = factories.make_certified_postback(config)
    preview = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "https://eu.acme.test/v2/4242/install?" in preview and "region=eu" in preview


def test_templates_are_untouched_by_a_configurations_overrides(app, partner):
    configured(app, partner, endpoint_base="https://eu.acme.test", fixed_parameters={"region": "eu"})
    assert PartnerTemplate.objects.get(partner=partner, event="install").url_template.startswith(
        "https://postback.acme.test/"
    )


def test_an_overridden_postback_reaches_the_base_with_the_templates_path_through_the_real_send_path(
    app, partner, receiver, allow_private
):
    # The template still names the partner's public host; only the configuration's base points here.
    config = configured(app, partner, endpoint_base=receiver.url + "/relay", fixed_parameters={"region": "eu"})
    factories.make_certified_postback(config, delivery_method="all")
    with clock.frozen(T0):
        events_ingest(
            app=app,
            items=[EventInput(event_id="e1", name="install", device_ids={"adid": "gaid-1"}, occurred_at=T0)],
        )
        deliveries_send(claim=deliveries_claim(limit=10))
    [received] = receiver.wait_for(1)
    assert (received.method, received.path) == ("GET", "/relay/12345/install")
    assert received.query["region"] == ["eu"] and received.query["gaid"] == ["gaid-1"]
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DELIVERED and delivery.url.startswith(receiver.url + "/relay/12345/")
