import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from partners.catalogue import catalogue_read, catalogue_sync
from partners.models import Partner, PartnerTemplate

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
        parameters={"a": "{no_such_macro}", "b": "{adid}"},
    )
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    messages = error.value.message_dict
    assert "{fields.missing} names no network-specific field" in messages["url_template"][0]
    assert messages["parameters"] == ["a: {no_such_macro} is not a known macro (see docs/macros.md)."]


def test_template_must_be_http_and_mappings_must_be_text(partner):
    template = PartnerTemplate(partner=partner, event="session_begin", url_template="ftp://x", parameters={"a": 1})
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert set(error.value.message_dict) == {"url_template", "parameters"}


def test_a_partner_template_may_not_put_a_placeholder_in_the_host(partner):
    template = partner.templates.get(event="install")
    template.url_template = "https://{fields.app_id}.acme.test/install"
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert "stands in the scheme, host or port" in " ".join(error.value.message_dict["url_template"])
