"""Every network-specific field explains itself with a hint and an example that passes its own
check, and a partner with no public wire format (or only a measurement partner's) is marked
illustrative (or partly illustrative) wherever the admin shows it."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from partners.catalogue import CatalogueError, catalogue_problems, catalogue_read, catalogue_sync
from partners.models import Partner, PartnerField
from postbacks.models import PartnerConfiguration
from tests import factories

pytestmark = pytest.mark.django_db

ILLUSTRATIVE = "is illustrative: it publishes no postback format"


def test_every_catalogue_field_has_a_hint_and_an_example_that_passes_its_own_check():
    for entry in catalogue_read():
        for field in entry["fields"]:
            where = f"{entry['slug']}.{field['name']}"
            assert field.get("example"), f"{where} has no example"
            assert field.get("help_text", "").strip(), f"{where} has no hint"
            loaded = PartnerField.objects.get(partner__slug=entry["slug"], name=field["name"])
            assert loaded.example == field["example"], where
            assert loaded.value_problem(loaded.example) is None, where
            loaded.full_clean()


def test_a_catalogue_field_whose_example_fails_its_pattern_is_refused():
    entries = catalogue_read()
    meta = next(entry for entry in entries if entry["slug"] == "meta")
    meta["fields"][0]["example"] = "not digits"
    with pytest.raises(CatalogueError) as error:
        catalogue_sync(entries=entries)
    assert "meta · fields.app_id: the example 'not digits' fails its pattern" in str(error.value)


def test_an_example_edited_in_the_admin_must_pass_the_pattern(partner):
    field = partner.fields.get(name="app_id")
    field.example = "12ab"
    with pytest.raises(ValidationError) as error:
        field.full_clean()
    assert error.value.message_dict["example"] == ["The example does not match the pattern."]


def test_moloco_and_moburst_are_loaded_illustrative_with_the_reason():
    illustrative = {entry["slug"] for entry in catalogue_read() if entry.get("documentation") == "illustrative"}
    assert illustrative >= {"moloco", "moburst"}
    for entry in catalogue_read():
        if entry.get("documentation", "documented") != "documented":
            assert entry.get("sources") and entry.get("illustrative_note"), entry["slug"]
    moloco = Partner.objects.get(slug="moloco")
    assert moloco.illustrative and "organic" in moloco.illustrative_note
    assert str(moloco) == "Moloco (illustrative)"
    assert not Partner.objects.get(slug="meta").illustrative


@pytest.fixture
def illustrative_partner(db):
    partner = factories.make_partner("guess_ads")
    partner.documentation = Partner.Documentation.ILLUSTRATIVE
    partner.illustrative_note = "No public format found."
    partner.save()
    return partner


def test_the_admin_says_a_partner_is_illustrative_on_every_page_of_it(client, manager, app, illustrative_partner):
    superuser = get_user_model().objects.create_superuser("root", password="pw-root")
    client.force_login(superuser)
    page = client.get(reverse("admin:partners_partner_change", args=[illustrative_partner.pk])).content.decode()
    assert f"Guess Ads {ILLUSTRATIVE}" in page and "No public format found." in page
    listing = client.get(reverse("admin:partners_partner_changelist")).content.decode()
    assert "Guess Ads" in listing

    client.force_login(manager)
    add = reverse("admin:postbacks_partnerconfiguration_add")
    page = client.get(f"{add}?app={app.pk}").content.decode()
    assert "Guess Ads (illustrative)" in page  # the partner choice list
    page = client.post(add, {"app": app.pk, "partner": illustrative_partner.pk}).content.decode()
    assert ILLUSTRATIVE in page
    config = factories.make_partner_configuration(app, illustrative_partner)
    page = client.get(reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])).content.decode()
    assert ILLUSTRATIVE in page

    add = reverse("admin:postbacks_postbackconfiguration_add")
    page = client.get(f"{add}?app={app.pk}&kind=certified&partner_configuration={config.pk}").content.decode()
    assert ILLUSTRATIVE in page and "Guess Ads (illustrative) for" in page
    postback = factories.make_certified_postback(config)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert ILLUSTRATIVE in page


def test_the_admin_says_nothing_of_the_kind_for_a_documented_partner(client, manager, app, partner):
    config = factories.make_partner_configuration(app, partner)
    client.force_login(manager)
    page = client.get(reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])).content.decode()
    assert "illustrative" not in page
    assert PartnerConfiguration.objects.count() == 1


PARTLY = "is partly illustrative: it publishes no reference of its postback format"


@pytest.mark.parametrize("slug, name", [("applovin", "AppLovin"), ("ironsource", "ironSource Ads")])
def test_partners_whose_format_comes_from_a_measurement_partner_are_flagged_partly_illustrative(
    client, manager, app, slug, name
):
    """AppLovin and ironSource publish no reference: their templates follow Branch's public ones. The
    admin says so wherever the partner is chosen or configured, and names the sources in the note."""
    partner = Partner.objects.get(slug=slug)
    assert not partner.illustrative and partner.documentation == Partner.Documentation.PARTLY_ILLUSTRATIVE
    assert str(partner).endswith("(partly illustrative)") and "Branch" in partner.illustrative_note
    client.force_login(manager)
    add = reverse("admin:postbacks_partnerconfiguration_add")
    assert f"{name} (partly illustrative)" in client.get(f"{add}?app={app.pk}").content.decode()  # the choice list
    examples = {field.name: field.example for field in partner.fields.all()}
    config = factories.make_partner_configuration(app, partner, **examples)
    page = client.get(reverse("admin:postbacks_partnerconfiguration_change", args=[config.pk])).content.decode()
    assert PARTLY in page and "Confirm them with" in page
    postback = factories.make_certified_postback(config)
    page = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert PARTLY in page


def test_a_catalogue_entry_marked_illustrative_without_its_reason_is_refused():
    entry = {"slug": "guess", "name": "Guess", "kind": "network", "documentation": "partly_illustrative"}
    assert catalogue_problems(entries=[entry]) == [
        "guess · a partly_illustrative partner needs an illustrative_note and sources"
    ]
    entry["documentation"] = "maybe"
    assert "is not one of" in catalogue_problems(entries=[entry])[0]
