"""Retention: each kind of data goes when its setting says, what attribution still needs stays,
the worker's own schedule runs it, and a long run goes on in a new task."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.brokers import get_broker
from django_q.models import Schedule

from events.models import Click, Device, DeviceIdentifier, Event
from events.services import EventInput, click_record
from postbacks import tasks
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery, DeliveryMinute, SessionPeriodClaim
from postbacks.retention import event_names_fill, retention_run
from postbacks.schedules import RETENTION_SCHEDULE, RETENTION_TASK, retention_schedule_ensure
from postbacks.selectors import deliveries_of_event_name
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.postbacks.test_erasure import run_queued_tasks

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEPT_ADID = "aaaaaaaa-1111-4111-8111-111111111111"
GONE_ADID = "bbbbbbbb-2222-4222-8222-222222222222"


def record(app, event_id: str, name: str, adid: str, at: datetime) -> Event:
    with clock.frozen(at + timedelta(seconds=1)):
        return events_ingest(app=app, items=[EventInput(event_id, name, {"adid": adid}, occurred_at=at)])[0].event


def run_at(moment: datetime, **options):
    with clock.frozen(moment):
        return retention_run(**options)


@pytest.fixture
def world(app, partner, receiver, allow_private):
    """Two attributed installs at T0 with delivered postbacks; one device comes back at day 80."""
    tracker = factories.make_tracker(app, partner, campaign_name="Spring")
    for event in ("install", "session_begin"):
        factories.make_custom_postback(app, event=event, url=receiver.url + "/in", macros=["adid"])
    for adid in (KEPT_ADID, GONE_ADID):
        click_record(
            tracker=tracker,
            clicked_at=T0 - timedelta(hours=1),
            device_ids={"adid": adid},
            click_id="clk",
            ip=None,
            user_agent="",
            parameters={},
        )
    kept = record(app, "kept-install", "install", KEPT_ADID, T0).device
    gone = record(app, "gone-install", "install", GONE_ADID, T0).device
    with clock.frozen(T0 + timedelta(minutes=1)):
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"delivered": 2}
    record(app, "kept-session", "session_begin", KEPT_ADID, T0 + timedelta(days=80))
    assert kept.network == partner and kept.install_click is not None
    return {"kept": kept, "gone": gone, "partner": partner}


def test_deliveries_and_their_attempts_go_after_their_retention_events_stay(world):
    assert run_at(T0 + timedelta(days=29)).counts["deliveries"] == 0
    run = run_at(T0 + timedelta(days=31))
    assert run.counts["deliveries"] == 2 and run.finished
    assert not Delivery.objects.filter(event__event_id__endswith="-install").exists()
    assert Attempt.objects.count() == 0
    assert Event.objects.filter(event_id__endswith="-install").count() == 2


def test_a_session_period_claim_stays_while_an_event_of_its_period_may_arrive(app, world, settings):
    """The day-80 SessionBegin claimed the period [day 80, day 81): a SessionBegin of that
    period arriving as late as the API takes it is still refused a second postback."""
    period_end = T0 + timedelta(days=81)
    latest_arrival = period_end + timedelta(days=settings.EVENT_MAX_AGE_DAYS)
    assert run_at(latest_arrival).counts["session claims"] == 0
    with clock.frozen(latest_arrival):
        item = EventInput(
            "late-session", "session_begin", {"adid": KEPT_ADID}, occurred_at=period_end - timedelta(hours=1)
        )
        [late] = events_ingest(app=app, items=[item])
    assert "Already sent for this device" in Delivery.objects.get(event=late.event).skip_reason
    # Made at day 80, kept EVENT_MAX_AGE_DAYS + 2 days (a day of margin past the latest arrival).
    claim_expired = T0 + timedelta(days=80 + settings.EVENT_MAX_AGE_DAYS + 2, minutes=1)
    assert run_at(claim_expired).counts["session claims"] == 1
    assert not SessionPeriodClaim.objects.exists()


def test_inactive_devices_go_with_their_history_while_active_ones_keep_their_attribution(app, world):
    run = run_at(T0 + timedelta(days=91))
    assert (run.counts["events"], run.counts["devices"], run.counts["clicks"]) == (2, 1, 2)
    # The device seen at day 80 keeps its install and attribution; its install event and click are gone.
    kept = Device.objects.get(pk=world["kept"].pk)
    assert (kept.network, kept.campaign_name, kept.installed_at) == (world["partner"], "Spring", T0)
    assert kept.install_click is None
    assert list(Event.objects.values_list("event_id", flat=True)) == ["kept-session"]
    assert not Device.objects.filter(pk=world["gone"].pk).exists()
    assert not DeviceIdentifier.objects.filter(value=GONE_ADID).exists()
    assert Click.objects.count() == 0
    # A reinstall of the kept device is still one; the deleted device starts a new history.
    again = record(app, "kept-again", "install", KEPT_ADID, T0 + timedelta(days=92))
    assert again.is_reinstall and again.device_id == kept.pk
    new = record(app, "gone-again", "install", GONE_ADID, T0 + timedelta(days=92))
    assert not new.is_reinstall and new.device.network is None


def test_an_unsent_delivery_keeps_its_event_and_device(app, world, receiver):
    factories.make_custom_postback(app, event="purchase", url=receiver.url + "/held", delay_seconds=600)
    held = record(app, "held", "purchase", GONE_ADID, T0 + timedelta(days=1))
    run_at(T0 + timedelta(days=200))
    assert Event.objects.filter(pk=held.pk).exists() and Device.objects.filter(pk=world["gone"].pk).exists()
    assert Delivery.objects.get(event=held).status == "scheduled"


def test_clicks_stay_as_long_as_the_longest_lookback_can_read_them(app, world, settings, caplog):
    settings.CLICK_RETENTION_DAYS = 30
    app.lookback_days = 60
    app.save()
    with caplog.at_level(logging.WARNING, logger="postbacks.retention"):
        run = run_at(T0 + timedelta(days=60))
    assert run.click_days == 60 + settings.EVENT_MAX_AGE_DAYS and Click.objects.count() == 2
    assert "not CLICK_RETENTION_DAYS=30" in caplog.text
    assert run_at(T0 + timedelta(days=68)).counts["clicks"] == 2


def test_rollups_stay_for_the_statistics_longest_window(world, settings):
    settings.DELIVERY_RETENTION_DAYS = 10
    assert DeliveryMinute.objects.exists()
    assert run_at(T0 + timedelta(days=29)).counts["rollup minutes"] == 0
    assert run_at(T0 + timedelta(days=31)).counts["rollup minutes"] == 1
    assert not DeliveryMinute.objects.exists()


def test_the_command_counts_on_a_dry_run_and_deletes_otherwise(world, capsys):
    with clock.frozen(T0 + timedelta(days=91)):
        call_command("retention", "--dry-run")
        dry = capsys.readouterr().out
        assert Event.objects.count() == 3 and Device.objects.count() == 2
        call_command("retention")
    done = capsys.readouterr().out
    assert "Would delete 2 deliveries" in dry and "Would delete 1 devices" in dry
    assert "Deleted 2 deliveries" in done and "Deleted 2 events" in done and "Deleted 2 clicks" in done
    assert Event.objects.count() == 1 and Device.objects.count() == 1


def test_a_run_out_of_time_stops_and_the_task_queues_the_rest(world, monkeypatch):
    first = run_at(T0 + timedelta(days=91), budget=timedelta(0), batch=1)
    assert not first.finished and sum(first.counts.values()) == 0
    broker = get_broker()
    broker.purge_queue()
    monkeypatch.setattr(tasks, "RETENTION_TASK_BUDGET", timedelta(0))
    with clock.frozen(T0 + timedelta(days=91)):
        tasks.run_retention()  # nothing can be done in 0 s: the rest is queued
        monkeypatch.setattr(tasks, "RETENTION_TASK_BUDGET", timedelta(seconds=30))
        assert run_queued_tasks(broker) == [RETENTION_TASK]
    assert Device.objects.count() == 1 and Click.objects.count() == 0


def test_devices_are_scanned_on_from_where_a_run_stopped(app, world):
    record(app, "third", "install", "cccccccc-3333-4333-8333-333333333333", T0)
    with clock.frozen(T0 + timedelta(minutes=1)):
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"delivered": 1}
    run = run_at(T0 + timedelta(days=91), batch=1)
    assert run.counts["devices"] == 2 and run.finished and run.devices_after == 0
    assert list(Device.objects.values_list("pk", flat=True)) == [world["kept"].pk]


def test_migrate_creates_the_daily_retention_schedule_once(db):
    schedule = Schedule.objects.get(name=RETENTION_SCHEDULE)
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (RETENTION_TASK, Schedule.DAILY, -1)
    schedule.next_run = datetime(2030, 1, 1, 4, 0, tzinfo=UTC)  # an operator's choice
    schedule.save()
    retention_schedule_ensure()
    assert Schedule.objects.filter(name=RETENTION_SCHEDULE).count() == 1
    assert Schedule.objects.get(name=RETENTION_SCHEDULE).next_run == schedule.next_run


def test_deliveries_made_before_event_names_were_stored_get_theirs_and_the_log_reads_names_alone(world, capsys):
    session = Delivery.objects.get(event__event_id="kept-session")
    orphan = Delivery.objects.get(event__event_id="gone-install")
    # As migration postbacks 0015 leaves them; one delivery's event is gone meanwhile.
    Delivery.objects.update(event_name=None)
    Delivery.objects.filter(pk=orphan.pk).update(event_id=orphan.event_id + 1_000_000)

    with clock.frozen(T0 + timedelta(days=2)):  # nothing expired yet
        call_command("retention")
    assert "Stored the event name of 3 deliveries made before migration postbacks 0015." in capsys.readouterr().out
    names = dict(Delivery.objects.values_list("pk", "event_name"))
    kept_install = Delivery.objects.get(event__event_id="kept-install")
    assert names == {kept_install.pk: "install", session.pk: "session_begin", orphan.pk: ""}
    with CaptureQueriesContext(connection) as queries:
        found = list(deliveries_of_event_name(deliveries=Delivery.objects.all(), name="session_begin"))
    assert found == [session]
    assert "EXISTS" not in queries[-1]["sql"].upper()  # no probe of each delivery's event
    assert run_at(T0 + timedelta(days=3)).event_names_filled == 0
    # A batch at a time, each from where the last one ended.
    Delivery.objects.update(event_name=None)
    assert event_names_fill(batch=1) == 3
    assert dict(Delivery.objects.values_list("pk", "event_name")) == names
