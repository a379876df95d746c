"""Daily partitions on PostgreSQL: a day past its retention is dropped whole; a day holding a
few rows that are kept is dropped and they move to the default partition, one holding many
stays (its expired rows go in batches); a day nobody created ahead goes to the default
partition and loses nothing; and the days ahead are made by the retention run."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection

from events.models import Click, Device, Event, EventKey
from events.services import EventInput, click_record
from postbacks import partitions
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery
from postbacks.retention import expiring, expiring_delete, retention_run
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock, partitioning
from tests import factories

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's"),
]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def partition_of(model, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{model._meta.db_table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def days_of(table: str) -> set:
    with connection.cursor() as cursor:
        return {p.day for p in partitioning.partitions_of(cursor, table=table) if p.day is not None}


def ingest(app, event_id: str, name: str, adid: str):
    [outcome] = events_ingest(app=app, items=[EventInput(event_id, name, {"adid": adid}, occurred_at=clock.now())])
    return outcome.event


@pytest.fixture
def day():
    """A day whose partitions exist (migrate makes the coming week's), at 09:00 UTC."""
    return datetime.combine(partitions.database_today() + timedelta(days=2), time(9), tzinfo=UTC)


@pytest.fixture
def world(app, partner, receiver, allow_private, day):
    """On `day`: two attributed installs, their postbacks delivered; one device comes back 80 days later."""
    tracker = factories.make_tracker(app, partner, campaign_name="Spring")
    factories.make_custom_postback(app, event="install", url=receiver.url + "/in", macros=["adid"])
    devices = {}
    for adid in ("aaaaaaaa-1111-4111-8111-111111111111", "bbbbbbbb-2222-4222-8222-222222222222"):
        with clock.frozen(day - timedelta(hours=1)):
            click_record(
                tracker=tracker, clicked_at=clock.now(), device_ids={"adid": adid}, click_id="c", ip=None,
                user_agent="", parameters={},
            )  # fmt: skip
        with clock.frozen(day):
            devices[adid] = ingest(app, f"install-{adid}", "install", adid).device
    with clock.frozen(day + timedelta(minutes=1)):
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"delivered": 2}
    kept_adid = "aaaaaaaa-1111-4111-8111-111111111111"
    with clock.frozen(day + timedelta(days=80)):
        ingest(app, "later", "session_begin", kept_adid)
    return {"kept": devices[kept_adid], "day": day}


def test_migrate_partitions_events_and_clicks_by_time_and_deliveries_with_their_attempts_by_day(db):
    today = partitions.database_today()
    week = {today + timedelta(days=n) for n in range(8)}
    for table in ("events_event", "events_click", "postbacks_delivery", "postbacks_attempt"):
        assert week <= days_of(table)
        # Empty when partitioned: no legacy partition (tests/project/test_partitioning.py has one).
        assert table_exists(f"{table}_default") and not table_exists(f"{table}_legacy")


def test_a_day_past_its_retention_is_dropped_whole(app, world):
    day = world["day"].date()
    installs = list(Event.objects.filter(name="install").values_list("pk", flat=True))
    assert {partition_of(Event, pk) for pk in installs} == {f"events_event_d{day:%Y%m%d}"}
    assert EventKey.objects.filter(pk__in=installs).count() == 2
    delivery_day = partitioning.day_of(Delivery.objects.first().pk)  # the database's day: today
    deliveries_day = f"postbacks_delivery_d{delivery_day:%Y%m%d}"
    attempts_day = f"postbacks_attempt_d{delivery_day:%Y%m%d}"
    assert {partition_of(Delivery, pk) for pk in Delivery.objects.values_list("pk", flat=True)} == {deliveries_day}
    assert Attempt.objects.count() == 2

    with clock.frozen(world["day"] + timedelta(days=31)):
        run = retention_run()
    assert run.counts["deliveries"] == 2
    assert not table_exists(deliveries_day) and not table_exists(attempts_day)
    assert not Delivery.objects.exists() and not Attempt.objects.exists()

    with clock.frozen(world["day"] + timedelta(days=91)):
        run = retention_run()
    assert (run.counts["events"], run.counts["clicks"], run.counts["devices"]) == (2, 2, 1)
    assert not table_exists(f"events_event_d{day:%Y%m%d}") and not table_exists(f"events_click_d{day:%Y%m%d}")
    assert not Event.objects.filter(pk__in=installs).exists() and not Click.objects.exists()
    assert not EventKey.objects.filter(pk__in=installs).exists()
    # The device seen at day 80 keeps its attribution; its link to the dropped click is emptied.
    kept = Device.objects.get(pk=world["kept"].pk)
    assert (kept.campaign_name, kept.install_click_id) == ("Spring", None)
    assert Event.objects.filter(event_id="later").exists()


def test_an_event_day_dropped_first_takes_its_deliveries_with_it(app, world):
    """Deliveries normally expire first; when an events' day goes while some of its deliveries
    remain (their own day not dropped yet), those go first, found by their day."""
    installs = set(Event.objects.filter(name="install").values_list("pk", flat=True))
    assert set(Delivery.objects.values_list("event_id", flat=True)) == installs
    with clock.frozen(world["day"] + timedelta(days=91)):
        [events] = [each for each in expiring(now=clock.now(), click_days=90) if each.kind == "events"]
        assert expiring_delete(events) == 2
    assert not Delivery.objects.exists() and not Attempt.objects.exists()
    assert not Event.objects.filter(pk__in=installs).exists()


@pytest.fixture
def held(app, receiver, allow_private, day):
    """Two installs on `day`: one's postback delivered, the other's held (scheduled) 91 days on."""
    factories.make_custom_postback(app, event="install", url=receiver.url + "/in")
    for n in (1, 2):
        with clock.frozen(day):
            ingest(app, f"install-{n}", "install", f"{n}" * 8)
    with clock.frozen(day + timedelta(minutes=1)):
        assert deliveries_send(claim=deliveries_claim(limit=1)) == {"delivered": 1}
    unsent = Delivery.objects.get(status=Delivery.Status.SCHEDULED)
    # Not due at the retention's clock: it stays scheduled, as a paused configuration's would.
    Delivery.objects.filter(pk=unsent.pk).update(due_at=day + timedelta(days=92))
    return unsent


def test_a_day_with_a_few_kept_rows_is_dropped_and_they_move_to_the_default_partition(held, day):
    # The held delivery was tried once: its attempt goes where it goes.
    tried = Attempt.objects.create(
        delivery=held, number=1, started_at=day, duration_ms=5, method="GET", url=held.url, outcome="retry"
    )
    delivery_day = partitioning.day_of(held.pk)
    with clock.frozen(day + timedelta(days=91)):
        run = retention_run()
    assert (run.counts["deliveries"], run.counts["events"]) == (1, 1)
    assert not table_exists(f"events_event_d{day:%Y%m%d}")
    assert list(Event.objects.values_list("pk", flat=True)) == [held.event_id]
    assert partition_of(Event, held.event_id) == "events_event_default"
    assert not table_exists(f"postbacks_delivery_d{delivery_day:%Y%m%d}")
    assert not table_exists(f"postbacks_attempt_d{delivery_day:%Y%m%d}")
    assert Delivery.objects.get().pk == held.pk  # and still to send
    assert partition_of(Delivery, held.pk) == "postbacks_delivery_default"
    assert list(Attempt.objects.values_list("pk", flat=True)) == [tried.pk]
    assert partition_of(Attempt, tried.pk) == "postbacks_attempt_default"


def test_a_day_with_many_kept_rows_stays_and_its_expired_rows_go_in_batches(held, day, monkeypatch):
    monkeypatch.setattr(partitions, "MOVED_AT_MOST", 0)
    with clock.frozen(day + timedelta(days=91)):
        run = retention_run()
    assert run.counts["events"] == 1
    assert table_exists(f"events_event_d{day:%Y%m%d}")
    assert list(Event.objects.values_list("pk", flat=True)) == [held.event_id]
    assert Delivery.objects.get().pk == held.pk


def test_a_day_nobody_made_goes_to_the_default_partition_and_loses_nothing(app, caplog):
    later = datetime.combine(partitions.database_today() + timedelta(days=30), time(9), tzinfo=UTC)
    with clock.frozen(later):
        far = ingest(app, "far", "install", "cccccccc")
    assert partition_of(Event, far.pk) == "events_event_default"
    created = partitions.partitions_ensure(days_ahead=40)
    assert f"events_event_d{later:%Y%m%d}" not in created and f"events_click_d{later:%Y%m%d}" in created
    assert f"rows of {later.date()} are in its default partition" in caplog.text
    assert Event.objects.get().event_id == "far"
    with clock.frozen(later + timedelta(days=91)):
        assert retention_run().counts["events"] == 1
    assert not Event.objects.exists()


def test_the_retention_run_makes_the_coming_week(app):
    today = partitions.database_today()
    with connection.cursor() as cursor:
        for partition in partitioning.partitions_of(cursor, table="events_event"):
            if partition.day and partition.day > today + timedelta(days=3):
                partitioning.partition_drop(cursor, table="events_event", partition=partition)
    assert today + timedelta(days=7) not in days_of("events_event")
    retention_run()
    assert today + timedelta(days=7) in days_of("events_event")
