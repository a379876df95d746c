import importlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from partners.catalogue import CatalogueError, catalogue_read, catalogue_sync
from partners.models import Partner, PartnerTemplate
from postbacks.models import PartnerConfiguration, PostbackConfiguration
from postbacks.rendering import render_postback, sample_values

pytestmark = pytest.mark.django_db


def test_migrate_loads_a_catalogue_of_certified_partners_of_every_kind():
    partners = Partner.objects.filter(slug__in=[entry["slug"] for entry in catalogue_read()])
    assert partners.count() >= 8
    kinds = set(partners.values_list("kind", flat=True))
    assert kinds == {Partner.Kind.NETWORK, Partner.Kind.ANALYTICS, Partner.Kind.AGENCY}
    for partner in partners:
        assert partner.is_certified, partner
        assert partner.template_for_event("install") is not None, partner
        assert partner.fields.exists(), partner


def test_every_shipped_template_and_field_is_valid():
    for template in PartnerTemplate.objects.all():
        template.full_clean()
    for entry in catalogue_read():
        for field in entry["fields"]:
            re.compile(field.get("pattern", ""))


def test_sync_restores_the_managed_template_and_is_idempotent():
    template = PartnerTemplate.objects.get(partner__slug="meta", event="install")
    template.url_template = "https://evil.example/steal"
    template.save()
    first = catalogue_sync()
    assert PartnerTemplate.objects.get(pk=template.pk).url_template.startswith("https://graph.facebook.com/")
    count = PartnerTemplate.objects.count()
    assert catalogue_sync() == first
    assert PartnerTemplate.objects.count() == count


def test_sync_command_reports_counts(capsys):
    call_command("sync_partner_catalogue")
    assert "Synced" in capsys.readouterr().out


def test_post_install_template_serves_custom_events_but_not_builtins(partner):
    assert partner.template_for_event("purchase").event == "*"
    assert partner.template_for_event("install").event == "install"
    assert partner.template_for_event("session_begin") is None


def test_template_with_unknown_macro_or_field_is_refused(partner):
    template = PartnerTemplate(
        partner=partner,
        event="session_begin",
        url_template="https://x.test/{fields.missing}",
        body={"a": "{no_such_macro}", "b": "{adid}"},
    )
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    messages = error.value.message_dict
    assert "{fields.missing} names no network-specific field" in messages["url_template"][0]
    assert messages["body"] == ["body.a: {no_such_macro} is not a known macro (see docs/macros.md)."]


def test_template_must_be_http_and_a_query_body_must_be_an_object(partner):
    template = PartnerTemplate(partner=partner, event="session_begin", url_template="ftp://x", body=["a"])
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert set(error.value.message_dict) == {"url_template", "body"}


def test_a_partner_template_may_not_put_a_placeholder_in_the_host(partner):
    template = partner.templates.get(event="install")
    template.url_template = "https://{fields.app_id}.acme.test/install"
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert "stands in the scheme, host or port" in " ".join(error.value.message_dict["url_template"])


def test_a_catalogue_with_a_bad_template_is_refused_whole_with_paths(partner):
    entries = catalogue_read()
    meta = next(entry for entry in entries if entry["slug"] == "meta")
    meta["templates"][0]["body"]["advertiser_id"] = {"$macro": "adid", "transforms": ["lower", "sha1"]}
    meta["templates"][1]["headers"] = {"Access-Token": "{fields.token}"}
    with pytest.raises(CatalogueError) as error:
        catalogue_sync(entries=entries)
    assert str(error.value).splitlines()[1:] == [
        'meta · install: body.advertiser_id.transforms[1]: unknown transform "sha1" '
        "(known: unix_seconds, unix_ms, iso8601, lower, upper, trim, sha256, md5, primary_language)",
        "meta · session_begin: headers.Access-Token: {fields.token} names no network-specific field of this partner "
        "(known: access_token, app_id).",
    ]
    assert PartnerTemplate.objects.get(partner__slug="meta", event="install").body["advertiser_id"] == {
        "$first": ["adid", "idfa"]
    }


def test_the_sync_command_says_what_is_wrong(monkeypatch):
    entries = catalogue_read()
    entries[0]["templates"][0]["encoding"] = "xml"
    monkeypatch.setattr("partners.catalogue.catalogue_read", lambda: entries)
    with pytest.raises(CommandError, match='unknown encoding "xml"'):
        call_command("sync_partner_catalogue")


def test_stored_templates_are_converted_glued_ids_become_the_first_non_empty():
    migration = importlib.import_module("partners.migrations.0004_convert_templates")
    assert migration.converted({"device": "{adid}{idfa}", "app": "{app_id}", "fixed": "a{adid}"}) == {
        "device": {"$first": ["adid", "idfa"]},
        "app": "{app_id}",
        "fixed": "a{adid}",
    }
    assert migration.converted({"x": {"$macro": "adid"}}) == {"x": {"$macro": "adid"}}


def test_a_shipped_template_never_glues_two_ids(app):
    config = PartnerConfiguration.objects.create(
        app=app, partner=Partner.objects.get(slug="moloco"), field_values={"platform_id": "abc"}
    )
    postback = PostbackConfiguration.objects.create(
        app=app, event="install", kind="certified", partner_configuration=config
    )
    values = {**sample_values(configuration=postback), "adid": "gaid-1", "idfa": "idfa-1"}
    query = parse_qs(urlsplit(render_postback(configuration=postback, values=values).url).query)
    assert query["ifa"] == ["gaid-1"]


def _template_form(partner: Partner, template: PartnerTemplate, **changes) -> dict:
    data = {
        "name": partner.name,
        "slug": partner.slug,
        "kind": partner.kind,
        "website": partner.website,
        "description": partner.description,
        "documentation": partner.documentation,
        "fields-TOTAL_FORMS": "0",
        "fields-INITIAL_FORMS": "0",
        "templates-TOTAL_FORMS": "1",
        "templates-INITIAL_FORMS": "1",
        "templates-0-id": str(template.pk),
        "templates-0-partner": str(partner.pk),
        "templates-0-event": template.event,
        "templates-0-method": template.method,
        "templates-0-url_template": template.url_template,
        "templates-0-encoding": template.encoding,
        "templates-0-query": json.dumps(template.query),
        "templates-0-body": json.dumps(template.body),
        "templates-0-headers": json.dumps(template.headers),
        "templates-0-reply": json.dumps(template.reply),
        "templates-0-source": template.source,
        "templates-0-event_name_map": json.dumps(template.event_name_map),
    }
    return data | {f"templates-0-{name}": value for name, value in changes.items()}


def test_a_superuser_editing_a_template_in_the_admin_sees_the_path_of_a_mistake(client):
    partner = Partner.objects.get(slug="unity_ads")
    template = partner.templates.get(event="install")
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root"))
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    # The inline formset only saves forms whose data changed; the fields inline is sent empty.
    bad = {"advertisingTrackingId": {"$macro": "idfa", "transforms": ["upper"], "type": "uuid"}}
    data = _template_form(partner, template, body=json.dumps(bad))
    data["fields-TOTAL_FORMS"] = "0"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "body.advertisingTrackingId.type: unknown type &quot;uuid&quot;" in response.content.decode()
    good = {"advertisingTrackingId": {"$macro": "idfa", "transforms": ["upper"]}}
    response = client.post(url, _template_form(partner, template, body=json.dumps(good)))
    assert response.status_code == 302
    assert PartnerTemplate.objects.get(pk=template.pk).body == good


def test_an_account_manager_cannot_edit_templates(client, manager):
    partner = Partner.objects.get(slug="unity_ads")
    template = partner.templates.get(event="install")
    client.force_login(manager)
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    response = client.post(url, _template_form(partner, template, body=json.dumps({"x": "{adid}"})))
    assert response.status_code == 403
    assert PartnerTemplate.objects.get(pk=template.pk).body != {"x": "{adid}"}
