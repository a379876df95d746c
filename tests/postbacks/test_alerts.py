"""Alerts and pauses (issue 17 §3): failures raise an alert (and a recovery clears it) by
e-mail and to a webhook; a paused configuration's deliveries are held, then resumed oldest
first or discarded. A real receiver on 127.0.0.1, Django's locmem mail, a frozen clock."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from events.services import EventInput
from postbacks import alerts, selectors
from postbacks.ingest import events_ingest
from postbacks.models import Alert, AlertRules, AlertState, Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.product import free_port
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    with clock.frozen(T0) as moving_clock:
        yield moving_clock


@pytest.fixture
def hook():
    """The alert webhook's receiver (the partner's is `receiver`)."""
    with Receiver() as running:
        yield running


@pytest.fixture
def postback(app, receiver, allow_private):
    return factories.make_custom_postback(app, url=receiver.url + "/in", retry_attempts=0, title="Warehouse")


def ingest(app, event_id):
    data = EventInput(event_id=event_id, name="install", device_ids={"device_id": event_id}, occurred_at=clock.now())
    return events_ingest(app=app, items=[data])[0].event


def send_due() -> dict:
    return deliveries_send(claim=deliveries_claim(limit=100))


def deliver(app, receiver, replies: list[int], *, start: int = 0) -> None:
    """One delivery per reply status, sent one after the other."""
    for number, status in enumerate(replies, start=start):
        receiver.replies = [Reply(status=status)]
        ingest(app, f"e{number}")
        send_due()


def notifications(callbacks: list) -> list:
    """The on-commit callbacks that queue an alert's notification task."""
    return [callback for callback in callbacks if "_notify_later" in callback.__qualname__]


def account_rules(account, **fields) -> AlertRules:
    defaults = {"consecutive_failures": 3, "failure_rate_percent": 0, "window_minutes": 15, "window_min_attempts": 1}
    return AlertRules.objects.create(account=account, **{**defaults, **fields})


def test_consecutive_failures_raise_one_alert_sent_later_by_email_and_to_the_webhook(
    app, account, postback, receiver, hook, frozen, django_capture_on_commit_callbacks
):
    account_rules(account, email_to="ops@acme.test, partners@acme.test", webhook_url=hook.url + "/alerts")
    with django_capture_on_commit_callbacks() as queued:
        deliver(app, receiver, [500, 500])
        assert not Alert.objects.exists() and AlertState.objects.get().consecutive_failures == 2
        deliver(app, receiver, [500, 500], start=2)  # the 3rd trips the rule; the 4th raises nothing new
    alert = Alert.objects.get()
    assert (alert.kind, alert.paused, alert.notified_at) == ("failing", False, None)
    assert alert.reason.startswith("3 attempts in a row failed; last error: HTTP 500")
    # The send path only queued the notification (on commit, for a django-q2 task): nothing went out.
    assert len(notifications(queued)) == 1 and hook.received == [] and mail.outbox == []

    assert alerts.alert_notify(alert_id=alert.pk) == "e-mail sent to 2; webhook answered HTTP 200"
    [message] = hook.wait_for(1)
    body = json.loads(message.body)
    assert (message.method, message.path, message.headers["content-type"]) == ("POST", "/alerts", "application/json")
    assert body["text"].startswith("Postbacks failing: Warehouse (Rocket): 3 attempts in a row failed")
    assert body["kind"] == "failing" and body["configuration"]["id"] == postback.pk
    assert body["account"]["name"] == account.name and body["paused"] is False
    [email] = mail.outbox
    assert email.to == ["ops@acme.test", "partners@acme.test"] and "3 attempts in a row failed" in email.body
    alert.refresh_from_db()
    assert alert.notified_at == T0
    assert alerts.alert_notify(alert_id=alert.pk) == ""  # sent once only


def test_a_success_after_an_alert_is_a_recovery(app, account, postback, receiver, hook, frozen):
    account_rules(account, webhook_url=hook.url + "/alerts")
    deliver(app, receiver, [500, 500, 500, 200])
    failing, recovered = Alert.objects.order_by("pk")
    assert (failing.kind, recovered.kind) == ("failing", "recovered")
    assert not AlertState.objects.get().alerting
    alerts.alert_notify(alert_id=recovered.pk)
    assert json.loads(hook.wait_for(1)[0].body)["text"].startswith("Postbacks recovered: Warehouse (Rocket)")


def test_the_failure_rate_over_the_window_raises_an_alert_and_old_attempts_leave_the_window(
    app, account, postback, receiver, frozen
):
    account_rules(account, consecutive_failures=0, failure_rate_percent=50, window_minutes=10, window_min_attempts=4)
    deliver(app, receiver, [500, 200, 500])  # 2 of 3: too few attempts to judge
    assert not Alert.objects.exists()
    frozen.advance(timedelta(minutes=11))  # those three leave the window
    deliver(app, receiver, [200, 200, 500], start=3)
    assert not Alert.objects.exists()  # 1 of 3 in the window
    deliver(app, receiver, [500], start=6)  # 2 of 4
    alert = Alert.objects.get()
    assert alert.reason.startswith("2 of 4 attempts failed in the last 10 minutes (50 %, threshold 50 %)")


def test_a_configurations_own_rules_replace_the_accounts_and_the_settings_are_the_default(
    app, account, postback, receiver, settings, frozen
):
    settings.ALERT_CONSECUTIVE_FAILURES = 2
    other = factories.make_custom_postback(app, url=receiver.url + "/other", retry_attempts=0)
    rules = alerts.rules_for(configurations=[postback, other])
    assert rules[postback.pk].consecutive_failures == rules[other.pk].consecutive_failures == 2
    account_rules(account, consecutive_failures=5)
    AlertRules.objects.create(account=account, configuration=postback, consecutive_failures=7, webhook_url="")
    settings.ALERT_WEBHOOK_URL = "https://hooks.example.test/from-env"
    rules = alerts.rules_for(configurations=[postback, other])
    assert (rules[postback.pk].consecutive_failures, rules[other.pk].consecutive_failures) == (7, 5)
    assert rules[postback.pk].webhook_url == "https://hooks.example.test/from-env"  # empty: the setting's


def test_alert_rules_refuse_a_private_webhook_and_another_accounts_configuration(app, other_app, account):
    foreign = factories.make_custom_postback(other_app)
    rules = AlertRules(account=account, configuration=foreign, webhook_url="http://127.0.0.1:9/hook")
    with pytest.raises(ValidationError) as refused:
        rules.full_clean()
    assert set(refused.value.message_dict) == {"configuration", "webhook_url"}


def test_a_failing_channel_is_logged_and_noted_and_the_other_channel_still_goes(
    app, account, postback, receiver, settings, frozen, caplog
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    with Receiver() as broken_hook:
        broken_hook.default = Reply(status=500)
        account_rules(account, email_to="ops@acme.test", webhook_url=broken_hook.url + "/alerts")
        deliver(app, receiver, [500, 500, 500])
        alert = Alert.objects.get()
        with caplog.at_level(logging.WARNING, logger="postbacks.alerts"):
            noted = alerts.alert_notify(alert_id=alert.pk)
        assert len(broken_hook.received) == 1
    assert noted.startswith("e-mail failed: ") and noted.endswith("webhook failed: HTTP 500")
    logged = {record.message for record in caplog.records if record.name == "postbacks.alerts"}
    assert logged == {"alert e-mail failed", "alert webhook failed"}


def test_the_webhook_goes_through_the_guard_against_private_addresses(app, account, postback, receiver, hook, settings):
    account_rules(account, webhook_url=hook.url + "/alerts")
    deliver(app, receiver, [500, 500, 500])
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = False
    noted = alerts.alert_notify(alert_id=Alert.objects.get().pk)
    assert noted.startswith("webhook failed: Refused") and hook.received == []


def test_without_a_channel_the_alert_is_recorded_and_nothing_is_queued(
    app, postback, receiver, settings, frozen, django_capture_on_commit_callbacks
):
    settings.ALERT_CONSECUTIVE_FAILURES = 2
    with django_capture_on_commit_callbacks() as queued:
        deliver(app, receiver, [500, 500])
    assert Alert.objects.get().notification == "No channel configured." and notifications(queued) == []


# --- pauses ----------------------------------------------------------------------------------


def test_an_alert_pauses_the_configuration_new_deliveries_are_held_and_resume_sends_them_oldest_first(
    app, account, postback, receiver, frozen
):
    account_rules(account, pause_on_alert=True)
    deliver(app, receiver, [500, 500, 500])
    alert = Alert.objects.get()
    state = AlertState.objects.get()
    assert alert.paused and state.paused and state.pause_reason.startswith("Alert: 3 attempts in a row failed")
    for number in range(3):
        frozen.advance(timedelta(seconds=1))
        ingest(app, f"held-{number}")
    frozen.advance(timedelta(minutes=5))
    assert send_due() == {}  # held: not claimed, not dropped
    held = Delivery.objects.filter(status="scheduled")
    assert held.count() == 3
    # A pause is a decision, not a stall: no backlog for health checks, no restart of the workers.
    assert selectors.backlog() == (0, 0.0)
    assert not selectors.workers_stalled(after=timedelta(seconds=60))
    rows, total = selectors.undelivered(deliveries=Delivery.objects.all())
    assert total == 3 and all(row.why.startswith("Held: its configuration is paused since") for row in rows)

    assert alerts.configuration_resume(configuration=postback) == 3
    claim = deliveries_claim(limit=100)
    claimed = Delivery.objects.in_bulk(claim.ids)
    assert [claimed[pk].event.event_id for pk in claim.ids] == ["held-0", "held-1", "held-2"]
    receiver.default = Reply(status=200)
    assert deliveries_send(claim=claim) == {"delivered": 3}
    assert Alert.objects.order_by("pk").last().kind == "recovered"


def test_the_same_trouble_after_resume_pauses_again(app, account, postback, receiver, frozen):
    account_rules(account, pause_on_alert=True)
    deliver(app, receiver, [500, 500, 500])
    alerts.configuration_resume(configuration=postback)
    deliver(app, receiver, [500, 500], start=3)
    assert not AlertState.objects.get().paused  # the counts started over at Resume
    deliver(app, receiver, [500], start=5)
    assert AlertState.objects.get().paused
    assert list(Alert.objects.order_by("pk").values_list("kind", "paused")) == [("failing", True), ("failing", True)]


def test_discard_held_ends_them_skipped_saying_why(app, postback, receiver, frozen):
    assert alerts.configuration_pause(configuration=postback, reason="Partner maintenance")
    assert not alerts.configuration_pause(configuration=postback, reason="again")
    ingest(app, "e1")
    ingest(app, "e2")
    assert alerts.held_discard(configuration=postback, by="manager") == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"skipped"}
    reason = Delivery.objects.first().skip_reason
    assert reason == "Discarded while the configuration was paused, by manager at 2026-11-04 09:00 UTC."
    assert alerts.configuration_resume(configuration=postback) == 0
    assert send_due() == {} and receiver.received == []


def test_undelivered_says_why_each_delivery_waits(app, postback, receiver, frozen):
    delayed = factories.make_custom_postback(app, url=receiver.url + "/later", delay_seconds=300, title="Later")
    retrying = factories.make_custom_postback(app, url=receiver.url + "/retry", retry_attempts=3, title="Retry")
    receiver.reply_for = lambda request: Reply(status=503 if request.path == "/retry" else 200)
    ingest(app, "e1")
    send_due()
    alerts.configuration_pause(configuration=postback, reason="By hand")
    ingest(app, "e2")
    rows, total = selectors.undelivered(deliveries=Delivery.objects.all())
    why = {(row.delivery.configuration_id, row.delivery.event.event_id): row.why for row in rows}
    assert total == 5
    assert why[(delayed.pk, "e1")] == "Delayed: due at 2026-11-04 09:05:00 UTC (the configuration's delivery delay)."
    assert why[(retrying.pk, "e1")].startswith("Retrying: attempt 2 of 4 due at 2026-11-04 09:0")
    assert why[(retrying.pk, "e1")].endswith("last error: HTTP 503")
    assert why[(postback.pk, "e2")] == (
        "Held: its configuration is paused since 2026-11-04 09:00 UTC (By hand). Due since 2026-11-04 09:00:00 UTC: "
        "waiting for a worker."
    )
    assert (retrying.pk, "e2") in why and (postback.pk, "e1") not in why  # delivered at once


# --- the admin -------------------------------------------------------------------------------


def test_the_admin_shows_paused_configurations_and_resumes_or_discards(
    client, manager, app, postback, receiver, frozen
):
    other = factories.make_custom_postback(app, url=receiver.url + "/other", title="Still running")
    alerts.configuration_pause(configuration=postback, reason="Alert: 3 attempts in a row failed")
    ingest(app, "e1")
    client.force_login(manager)
    changelist = reverse("admin:postbacks_postbackconfiguration_changelist")
    page = client.get(changelist).content.decode()
    assert "Paused: Warehouse." in page and "PAUSED" in page and "Show the paused configurations" in page
    listed = client.get(changelist + "?paused=paused").context["cl"].result_list
    assert list(listed) == [postback]
    change = client.get(reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])).content.decode()
    assert "Paused since 2026-11-04 09:00 UTC (Alert: 3 attempts in a row failed): its deliveries are held." in change

    waiting = client.get(reverse("admin:postbacks_delivery_undelivered")).content.decode()
    assert "Held: its configuration is paused since" in waiting and "Alert: 3 attempts in a row failed" in waiting

    response = client.post(changelist, {"action": "resume", "_selected_action": [postback.pk, other.pk]}, follow=True)
    assert "Resumed: 1 held delivery will be sent, oldest first." in response.content.decode()
    assert not AlertState.objects.get(pk=postback.pk).paused
    client.post(changelist, {"action": "pause", "_selected_action": [postback.pk]})
    assert AlertState.objects.get(pk=postback.pk).pause_reason == "Paused by manager"
    response = client.post(changelist, {"action": "discard_held", "_selected_action": [postback.pk]}, follow=True)
    assert "1 held delivery discarded (skipped, unsent); the pause goes on." in response.content.decode()
    assert Delivery.objects.get(configuration=postback).status == "skipped"


def test_support_reads_alerts_and_what_waits_but_cannot_pause(client, support, app, account, postback, receiver):
    account_rules(account)
    deliver(app, receiver, [500, 500, 500])
    client.force_login(support)
    assert "3 attempts in a row failed" in client.get(reverse("admin:postbacks_alert_changelist")).content.decode()
    assert client.get(reverse("admin:postbacks_delivery_undelivered")).status_code == 200
    page = client.get(reverse("admin:postbacks_postbackconfiguration_changelist")).content.decode()
    assert 'value="pause"' not in page and 'value="resume"' not in page
