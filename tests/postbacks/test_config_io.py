"""Configuration as code: export, import, round trip, idempotence, errors that name their path."""

import copy
import json

import pytest
from django.core.management import CommandError, call_command

from events.models import Account, App, Tracker, hash_api_key
from postbacks.config_io import ConfigImportError, config_export, config_import
from postbacks.management.commands.demo_setup import DEMO_CONFIG
from postbacks.models import PartnerConfiguration, PostbackConfiguration

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_document():
    return json.loads(DEMO_CONFIG.read_text())


def wipe_configuration():
    App.objects.all().delete()
    Account.objects.all().delete()


def test_export_then_import_into_an_empty_database_round_trips_exactly(demo_document):
    config_import(document=demo_document)
    exported = config_export()
    assert len(exported["apps"]) == 3
    wipe_configuration()
    config_import(document=copy.deepcopy(exported))
    assert config_export() == exported


def test_import_is_idempotent(demo_document):
    first = config_import(document=demo_document)
    assert first.created and set(first.new_api_keys) == {
        "Demo Games / Space Rocks Android",
        "Demo Games / Space Rocks iOS",
        "Other Studio / Puzzle Garden",
    }
    stamps = list(PostbackConfiguration.objects.order_by("pk").values_list("pk", "updated_at"))
    keys = list(App.objects.order_by("pk").values_list("api_key_hash", flat=True))
    second = config_import(document=demo_document)
    assert not second.changed and not second.new_api_keys
    assert list(PostbackConfiguration.objects.order_by("pk").values_list("pk", "updated_at")) == stamps
    assert list(App.objects.order_by("pk").values_list("api_key_hash", flat=True)) == keys


def test_import_updates_what_changed(demo_document):
    config_import(document=demo_document)
    demo_document["apps"][0]["postbacks"][0]["retry_attempts"] = 9
    summary = config_import(document=demo_document)
    assert summary.updated == ["postback Space Rocks Android/install"]
    meta_install = PostbackConfiguration.objects.get(
        app__name="Space Rocks Android", event="install", partner_configuration__partner__slug="meta"
    )
    assert meta_install.retry_attempts == 9


def test_import_sets_a_given_api_key(demo_document):
    demo_document["apps"][0]["api_key"] = "pbk_imported_key_0123456789abcdef"
    config_import(document=demo_document)
    app = App.objects.get(name="Space Rocks Android")
    assert app.api_key_hash == hash_api_key("pbk_imported_key_0123456789abcdef")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["apps"][0]["postbacks"][2].update(retry_attempts=11),
            "apps[0].postbacks[2].retry_attempts: must be between 0 and 10",
        ),
        (
            lambda d: d["apps"][0]["postbacks"][5].update(macros=["adid", "shoe_size"]),
            "apps[0].postbacks[5].macros: Unknown macro shoe_size; see docs/macros.md for the list",
        ),
        (
            lambda d: d["apps"][0]["postbacks"][0].update(delay_seconds=45),
            "apps[0].postbacks[0].delay_seconds: must be one of 0, 30, 60, 120, 300, 600 (seconds)",
        ),
        (
            lambda d: d["apps"][0]["partner_configurations"][0].update(fields={}),
            "apps[0].partner_configurations[0].fields: Facebook App ID is required",
        ),
        (
            lambda d: d["apps"][0]["partner_configurations"][0].update(partner="myspace"),
            "apps[0].partner_configurations[0].partner: unknown partner 'myspace'",
        ),
        (
            lambda d: d["apps"][0].update(package_name="com.demogames.space-rocks"),
            "apps[0].package_name: 'com.demogames.space-rocks' is not an Android package name",
        ),
        (lambda d: d["apps"][1]["postbacks"][0].update(colour="red"), "apps[1].postbacks[0].colour: unknown key"),
        (
            lambda d: d["apps"][0]["trackers"][1].update(agency="meta"),
            "apps[0].trackers[1].agency: meta is a media network, not a agency",
        ),
        (
            lambda d: d["apps"][2]["postbacks"][0].update(partner="meta"),
            "apps[2].postbacks[0].partner: 'meta' has no partner configuration in this app",
        ),
        (
            lambda d: d["apps"][0]["postbacks"][5].update(destination_url="http://192.168.1.20/in"),
            "apps[0].postbacks[5].destination_url: 192.168.1.20 is a private address",
        ),
        (
            lambda d: d["apps"][0]["postbacks"][5].update(destination_url="http://{event_value}/in"),
            "apps[0].postbacks[5].destination_url: {event_value} stands in the scheme, host or port",
        ),
        (
            lambda d: d["apps"][0]["postbacks"][5].update(
                signing_secret="whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
            ),
            "apps[0].postbacks[5].signing_secret: A signature covers the request body, and a GET has none",
        ),
        (lambda d: d.update(apps={}), '$: expected an object with an "apps" list'),
    ],
)
def test_bad_documents_name_the_offending_path_and_change_nothing(demo_document, mutate, expected):
    mutate(demo_document)
    with pytest.raises(ConfigImportError) as error:
        config_import(document=demo_document)
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems
    assert not App.objects.exists()
    assert not Account.objects.exists()


def test_failed_import_leaves_existing_configuration_untouched(demo_document):
    config_import(document=demo_document)
    before = config_export()
    demo_document["apps"][0]["postbacks"][0]["retry_attempts"] = 4  # valid change...
    demo_document["apps"][2]["lookback_days"] = 0  # ...in the same file as an invalid one
    with pytest.raises(ConfigImportError, match=r"apps\[2\]\.lookback_days: must be between 1 and 90"):
        config_import(document=demo_document)
    assert config_export() == before


def test_prune_deletes_what_the_file_no_longer_lists(demo_document):
    config_import(document=demo_document)
    app_doc = demo_document["apps"][0]
    app_doc["postbacks"] = [pb for pb in app_doc["postbacks"] if pb["kind"] == "custom"]
    app_doc["partner_configurations"] = []
    app_doc["trackers"] = app_doc["trackers"][:1]
    config_import(document=demo_document)  # without --prune nothing is deleted
    assert PartnerConfiguration.objects.filter(app__name="Space Rocks Android").count() == 3
    summary = config_import(document=demo_document, prune=True)
    assert len(summary.deleted) == 3 + 2  # 3 partner configurations (their postbacks go too), 2 trackers
    app = App.objects.get(name="Space Rocks Android")
    assert set(app.postback_configurations.values_list("kind", flat=True)) == {"custom"}
    assert list(Tracker.objects.filter(app=app).values_list("id", flat=True)) == ["trk_demo_meta_ua"]


def test_commands_export_and_import_files(tmp_path, demo_document, capsys):
    source = tmp_path / "in.json"
    source.write_text(json.dumps(demo_document))
    call_command("import_postbacks", str(source))
    captured = capsys.readouterr()
    assert "created: app Space Rocks Android" in captured.out
    assert "API key for Demo Games / Space Rocks Android: pbk_" in captured.err
    call_command("export_postbacks", "--app", "Puzzle Garden")
    exported = json.loads(capsys.readouterr().out)
    assert [app["name"] for app in exported["apps"]] == ["Puzzle Garden"]
    call_command("import_postbacks", str(source))
    assert "Nothing to change" in capsys.readouterr().out


def test_import_command_errors_are_clear(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match="is not valid JSON"):
        call_command("import_postbacks", str(broken))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_postbacks", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="No app named Nope"):
        call_command("export_postbacks", "--app", "Nope")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"apps": [{"name": "X", "account": "A", "platform": "windows"}]}))
    with pytest.raises(
        CommandError, match=r"(?s)Nothing was imported; .*apps\[0\]\.platform: must be one of android, ios"
    ):
        call_command("import_postbacks", str(invalid))


def test_demo_setup_prints_logins_that_work(client, capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # where it keeps the demo key: not this checkout's var/
    call_command("demo_setup")
    out = capsys.readouterr().out
    password = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("admin "))
    # Through the login form, as a person logs in (the login throttle needs the request).
    assert client.post("/admin/login/", {"username": "admin", "password": password}).status_code == 302
    assert client.get("/admin/postbacks/postbackconfiguration/").status_code == 200
    manager_password = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("manager "))
    client.logout()
    assert client.post("/admin/login/", {"username": "manager", "password": manager_password}).status_code == 302
    listed = client.get("/admin/events/app/").context["cl"].result_list
    assert {app.account.name for app in listed} == {"Demo Games"}
