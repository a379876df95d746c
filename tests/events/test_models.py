from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from events.models import App, CustomEvent, Device, Event, Tracker, hash_api_key
from events.services import EventInput, app_issue_api_key
from partners.models import Partner
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("package", ["com.example.game", "com.example.game_2", "io.a1.b"])
def test_android_package_names_accepted(account, package):
    App(account=account, name="A", platform="android", package_name=package).full_clean(exclude=["api_key_hash"])


def test_bundle_id_on_android_app_refused_with_a_hint(account):
    app = App(account=account, name="A", platform="android", package_name="com.example.space-rocks")
    with pytest.raises(ValidationError) as error:
        app.full_clean(exclude=["api_key_hash"])
    message = error.value.message_dict["package_name"][0]
    assert "is not an Android package name" in message
    assert "looks like an iOS bundle ID; check the platform" in message


@pytest.mark.parametrize("package", ["game", "com..example", "com.example.game_1", "id123456789"])
def test_bad_ios_bundle_ids_refused(account, package):
    app = App(account=account, name="A", platform="ios", package_name=package)
    with pytest.raises(ValidationError, match="is not an iOS bundle ID"):
        app.full_clean(exclude=["api_key_hash"])


def test_api_key_is_shown_once_and_stored_only_as_a_hash(app):
    key = app_issue_api_key(app=app)
    stored = App.objects.filter(pk=app.pk).values().get()
    assert key.startswith("pbk_") and len(key) > 40
    assert key not in str(stored)
    assert stored["api_key_hash"] == hash_api_key(key)
    assert stored["api_key_prefix"] == key[:12]


def test_rotating_the_key_retires_the_old_one(app):
    old = app_issue_api_key(app=app)
    new = app_issue_api_key(app=app)
    assert new != old
    assert not App.objects.filter(api_key_hash=hash_api_key(old)).exists()
    assert App.objects.get(api_key_hash=hash_api_key(new)) == app
    assert App.objects.get(pk=app.pk).api_key_rotated_at is not None


def test_defaults_follow_the_seeds(account):
    app = factories.make_app(account, name="Fresh")
    assert app.lookback_days == 7
    assert app.is_active is True


def test_builtin_events_always_exist_and_cannot_be_redeclared(app):
    assert app.event_names()[:2] == ["install", "session_begin"]
    with pytest.raises(ValidationError, match="built-in event"):
        CustomEvent(app=app, name="install").full_clean()
    with pytest.raises(ValidationError):
        CustomEvent(app=app, name="purchase").full_clean()  # declared already by the factory


def test_custom_event_names_are_checked(app):
    with pytest.raises(ValidationError, match="Start with a letter or digit"):
        CustomEvent(app=app, name="has space").full_clean()


def test_tracker_network_and_agency_kinds_are_checked(app, partner):
    agency = factories.make_partner("acme_agency", kind=Partner.Kind.AGENCY)
    tracker = Tracker(app=app, network=agency, agency=partner, destination_url="https://store.test/app")
    with pytest.raises(ValidationError) as error:
        tracker.full_clean()
    assert set(error.value.message_dict) == {"network", "agency"}
    tracker = factories.make_tracker(app, partner, agency=agency, campaign_name="Launch")
    assert tracker.id.startswith("trk_")


def test_deleting_an_app_deletes_its_devices_events_and_deliveries(app, other_app):
    factories.make_custom_postback(app, event="install")
    occurred = datetime.now(UTC)
    for owner in (app, other_app):
        events_ingest(
            app=owner,
            items=[
                EventInput(
                    event_id="e1",
                    name="install",
                    device_ids={"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
                    occurred_at=occurred,
                )
            ],
        )
    assert Delivery.objects.filter(event__app=app).count() == 1

    app.delete()

    assert not Event.objects.filter(app_id=app.pk).exists()
    assert not Device.objects.filter(app_id=app.pk).exists()
    assert not Delivery.objects.filter(event__app_id=app.pk).exists()
    assert Event.objects.filter(app=other_app).count() == 1  # the other app keeps its own
