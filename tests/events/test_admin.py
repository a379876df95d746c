"""The admin as account managers and support staff see it: pages, permissions, account isolation."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from events.models import App, Tracker, hash_api_key
from events.services import EventInput, click_record
from postbacks.ingest import events_ingest
from postbacks.models import PostbackConfiguration
from postbacks.roles import ACCOUNT_MANAGERS, SUPPORT
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(app, other_app, partner):
    """Two accounts, each with a partner configuration, a tracker and postbacks."""
    objects = {}
    for prefix, target in (("", app), ("other_", other_app)):
        config = factories.make_partner_configuration(target, partner)
        objects[prefix + "config"] = config
        objects[prefix + "certified"] = factories.make_certified_postback(config)
        objects[prefix + "custom"] = factories.make_custom_postback(target, macros=["adid"])
        objects[prefix + "tracker"] = factories.make_tracker(target, partner, campaign_name=f"{prefix}campaign")
        objects[prefix + "click"] = click_record(
            tracker=objects[prefix + "tracker"],
            clicked_at=timezone.now(),
            device_ids={"device_id": f"{prefix}dev"},
            click_id="c1",
            ip=None,
            user_agent="",
            parameters={},
        )
        data = EventInput(
            event_id="e1", name="install", device_ids={"device_id": f"{prefix}dev"}, occurred_at=timezone.now()
        )
        objects[prefix + "event"] = events_ingest(app=target, items=[data])[0].event
    return objects


def admin_urls(objects, app, partner):
    return [
        reverse("admin:index"),
        reverse("admin:events_account_changelist"),
        reverse("admin:events_account_change", args=[app.account_id]),
        reverse("admin:events_app_changelist"),
        reverse("admin:events_app_change", args=[app.pk]),
        reverse("admin:events_tracker_changelist"),
        # The admin escapes "_" and some codes after it in primary keys (trk_22… would read
        # as trk", say): its own links quote the key, and so must these.
        reverse("admin:events_tracker_change", args=[quote(objects["tracker"].pk)]),
        reverse("admin:partners_partner_changelist"),
        reverse("admin:partners_partner_change", args=[partner.pk]),
        reverse("admin:postbacks_partnerconfiguration_changelist"),
        reverse("admin:postbacks_partnerconfiguration_change", args=[objects["config"].pk]),
        reverse("admin:postbacks_postbackconfiguration_changelist"),
        reverse("admin:postbacks_postbackconfiguration_change", args=[objects["certified"].pk]),
        reverse("admin:postbacks_postbackconfiguration_change", args=[objects["custom"].pk]),
        reverse("admin:events_event_changelist"),
        reverse("admin:events_event_change", args=[objects["event"].pk]),
        reverse("admin:events_device_changelist"),
        reverse("admin:events_device_change", args=[objects["event"].device_id]),
        reverse("admin:events_click_changelist"),
        reverse("admin:events_click_change", args=[objects["click"].pk]),
    ]


def test_a_tracker_whose_id_reads_as_an_admin_escape_opens_from_its_list(client, manager, app, partner):
    tracker = factories.make_tracker(app, partner)
    Tracker.objects.filter(pk=tracker.pk).update(id="trk_22a9e988bb")  # "_22" is the admin's escape for '"'
    client.force_login(manager)
    change_url = reverse("admin:events_tracker_change", args=[quote("trk_22a9e988bb")])
    assert change_url in client.get(reverse("admin:events_tracker_changelist")).content.decode()
    assert client.get(change_url).status_code == 200


ADD_URLS = [
    "admin:events_app_add",
    "admin:events_tracker_add",
    "admin:postbacks_partnerconfiguration_add",
    "admin:postbacks_postbackconfiguration_add",
]


@pytest.mark.parametrize("role", ["manager", "support"])
def test_every_page_loads_for_both_roles(client, request, configured, app, partner, role):
    client.force_login(request.getfixturevalue(role))
    for url in admin_urls(configured, app, partner):
        response = client.get(url)
        assert response.status_code == 200, url


def test_manager_add_pages_load_and_support_gets_none(client, manager, support, configured, app):
    client.force_login(manager)
    for name in ADD_URLS:
        assert client.get(reverse(name) + f"?app={app.pk}&event=install&kind=custom").status_code == 200, name
    client.force_login(support)
    for name in ADD_URLS:
        assert client.get(reverse(name)).status_code == 403, name


def test_events_devices_and_clicks_are_read_only_for_everyone(client, manager, configured):
    client.force_login(manager)
    url = reverse("admin:events_event_change", args=[configured["event"].pk])
    assert 'name="_save"' not in client.get(url).content.decode()
    assert client.post(url, {"name": "purchase"}).status_code == 403
    assert client.get(reverse("admin:events_event_add")).status_code == 403


def test_support_sees_configuration_read_only_and_cannot_save(client, support, configured):
    client.force_login(support)
    postback = configured["custom"]
    url = reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])
    page = client.get(url).content.decode()
    assert 'name="_save"' not in page
    response = client.post(url, {"retry_attempts": 0, "status": "inactive"})
    assert response.status_code == 403
    postback.refresh_from_db()
    assert (postback.retry_attempts, postback.status) == (3, "active")


def test_superuser_sees_every_account(admin_client, configured, app, other_app):
    page = admin_client.get(reverse("admin:events_app_changelist")).content.decode()
    assert app.name in page and other_app.name in page


def test_lists_show_only_the_users_accounts(client, manager, configured, app, other_app):
    client.force_login(manager)
    apps = client.get(reverse("admin:events_app_changelist")).context["cl"].result_list
    assert list(apps) == [app]
    for model, mine in (
        ("postbacks_postbackconfiguration", {configured["certified"], configured["custom"]}),
        ("postbacks_partnerconfiguration", {configured["config"]}),
        ("events_tracker", {configured["tracker"]}),
        ("events_event", {configured["event"]}),
        ("events_device", {configured["event"].device}),
        ("events_click", {configured["click"]}),
    ):
        listed = client.get(reverse(f"admin:{model}_changelist")).context["cl"].result_list
        assert set(listed) == mine, model
    accounts = client.get(reverse("admin:events_account_changelist")).context["cl"].result_list
    assert [account.name for account in accounts] == ["Acme Games"]


def test_filters_do_not_reveal_other_accounts(client, manager, configured, other_app):
    client.force_login(manager)
    for model in ("events_app", "events_tracker", "postbacks_postbackconfiguration"):
        page = client.get(reverse(f"admin:{model}_changelist")).content.decode()
        assert "Rival" not in page, model


def test_other_accounts_objects_are_unreachable_by_url(client, manager, configured, other_app):
    client.force_login(manager)
    for url in (
        reverse("admin:events_app_change", args=[other_app.pk]),
        reverse("admin:events_account_change", args=[other_app.account_id]),
        reverse("admin:events_tracker_change", args=[quote(configured["other_tracker"].pk)]),
        reverse("admin:postbacks_partnerconfiguration_change", args=[configured["other_config"].pk]),
        reverse("admin:postbacks_postbackconfiguration_change", args=[configured["other_custom"].pk]),
        reverse("admin:postbacks_postbackconfiguration_delete", args=[configured["other_custom"].pk]),
        reverse("admin:events_event_change", args=[configured["other_event"].pk]),
        reverse("admin:events_device_change", args=[configured["other_event"].device_id]),
        reverse("admin:events_click_change", args=[configured["other_click"].pk]),
    ):
        response = client.get(url, follow=True)
        assert b"doesn\xe2\x80\x99t exist" in response.content, url
    response = client.post(
        reverse("admin:postbacks_postbackconfiguration_delete", args=[configured["other_custom"].pk]), {"post": "yes"}
    )
    assert PostbackConfiguration.objects.filter(pk=configured["other_custom"].pk).exists()


def test_pickers_offer_only_the_users_objects(client, manager, configured, app, other_app, partner):
    client.force_login(manager)
    form = client.get(reverse("admin:postbacks_postbackconfiguration_add")).context["adminform"].form
    assert list(form.fields["app"].queryset) == [app]
    assert list(form.fields["partner_configuration"].queryset) == [configured["config"]]
    form = client.get(reverse("admin:events_tracker_add")).context["adminform"].form
    assert list(form.fields["app"].queryset) == [app]
    form = client.get(reverse("admin:events_app_add")).context["adminform"].form
    assert list(form.fields["account"].queryset) == [app.account]


def test_posting_another_accounts_object_is_refused(client, manager, configured, other_app, partner):
    client.force_login(manager)
    response = client.post(
        reverse("admin:events_tracker_add"),
        {"app": other_app.pk, "network": partner.pk, "kind": "acquisition", "destination_url": "https://s.test/"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in str(response.context["adminform"].form.errors["app"])
    assert not Tracker.objects.filter(app=other_app).exclude(pk=configured["other_tracker"].pk).exists()
    response = client.post(
        reverse("admin:postbacks_postbackconfiguration_add"),
        {
            "app": configured["config"].app_id,
            "event": "install",
            "kind": "certified",
            "status": "active",
            "partner_configuration": configured["other_config"].pk,
            "delivery_method": "all",
            "delay_seconds": 0,
            "retry_attempts": 3,
            "method": "GET",
        },
    )
    assert "Select a valid choice" in str(response.context["adminform"].form.errors["partner_configuration"])


def test_manager_creates_an_app_and_sees_its_api_key_once(client, manager, account):
    client.force_login(manager)
    response = client.post(
        reverse("admin:events_app_add"),
        {
            "account": account.pk,
            "name": "Galaxy",
            "platform": "ios",
            "package_name": "com.acme.galaxy-ios",
            "lookback_days": 7,
            "is_active": "on",
            "custom_events-TOTAL_FORMS": 1,
            "custom_events-INITIAL_FORMS": 0,
            "custom_events-0-name": "purchase",
        },
        follow=True,
    )
    app = App.objects.get(name="Galaxy")
    shown = [str(message) for message in response.context["messages"] if "API key" in str(message)]
    key = shown[0].split("<code>")[1].split("</code>")[0]
    assert app.api_key_hash == hash_api_key(key)
    assert app.event_names() == ["install", "session_begin", "purchase"]
    page = client.get(reverse("admin:events_app_change", args=[app.pk])).content.decode()
    assert key not in page
    assert app.api_key_prefix in page


def test_bundle_id_on_android_is_refused_in_the_admin(client, manager, account):
    client.force_login(manager)
    response = client.post(
        reverse("admin:events_app_add"),
        {
            "account": account.pk,
            "name": "Galaxy",
            "platform": "android",
            "package_name": "com.acme.galaxy-ios",
            "lookback_days": 7,
            "custom_events-TOTAL_FORMS": 0,
            "custom_events-INITIAL_FORMS": 0,
        },
    )
    assert "looks like an iOS bundle ID" in str(response.context["adminform"].form.errors["package_name"])
    assert not App.objects.filter(name="Galaxy").exists()


def test_rotate_api_key_action(client, manager, app):
    client.force_login(manager)
    old_hash = app.api_key_hash
    response = client.post(
        reverse("admin:events_app_changelist"),
        {"action": "rotate_api_key", "_selected_action": [app.pk]},
        follow=True,
    )
    app.refresh_from_db()
    assert app.api_key_hash != old_hash
    key = next(str(m) for m in response.context["messages"] if "New API key" in str(m)).split("<code>")[1][:60]
    assert app.api_key_hash == hash_api_key(key.split("</code>")[0])
    assert LogEntry.objects.filter(object_id=str(app.pk), change_message__contains="rotated").exists()


def test_app_page_leads_through_the_seed_flow(client, manager, configured, app):
    client.force_login(manager)
    page = client.get(reverse("admin:events_app_change", args=[app.pk])).content.decode()
    assert "Add a configuration" in page
    assert reverse("admin:postbacks_partnerconfiguration_add") + f"?app={app.pk}" in page
    for event in ("install", "session_begin", "purchase", "level_complete"):
        assert f"?app={app.pk}&amp;event={event}&amp;kind=certified" in page
    assert reverse("admin:postbacks_postbackconfiguration_change", args=[configured["certified"].pk]) in page


def test_role_groups_exist_after_migrate():
    managers = set(Group.objects.get(name=ACCOUNT_MANAGERS).permissions.values_list("codename", flat=True))
    support = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    assert {"change_postbackconfiguration", "add_partnerconfiguration", "delete_tracker"} <= managers
    assert "view_postbackconfiguration" in support
    assert not any(codename.startswith(("add_", "change_", "delete_")) for codename in support)
    assert "change_partnertemplate" not in managers  # the catalogue is managed


def test_unrelated_staff_user_sees_nothing(client, configured):
    loner = factories.make_staff("loner", group=ACCOUNT_MANAGERS)
    client.force_login(loner)
    assert list(client.get(reverse("admin:events_app_changelist")).context["cl"].result_list) == []
    assert list(client.get(reverse("admin:postbacks_partnerconfiguration_changelist")).context["cl"].result_list) == []
