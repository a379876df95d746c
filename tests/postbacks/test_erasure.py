"""Erasure on request (GDPR, CCPA): after it, no row holds the device's ids, other devices are
untouched, its deliveries are never sent, a later event starts a new, unattributed history,
and events arriving meanwhile leave nothing behind."""

import importlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, connections, models, transaction
from django.db.models.functions import Cast
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from events.models import Click, Device, Event
from events.services import EventInput, click_record
from postbacks.erasure import device_id_hash, erasure_process, erasure_request, erasures_claim
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery, Erasure
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ERASED_ADID = "aaaaaaaa-1111-4111-8111-111111111111"
ERASED_IDFV = "bbbbbbbb-2222-4222-8222-222222222222"
OTHER_ADID = "cccccccc-3333-4333-8333-333333333333"
ERASED_VALUES = (ERASED_ADID, ERASED_IDFV)


def record(app, event_id: str, name: str, device_ids: dict, at: datetime) -> Event:
    with clock.frozen(at + timedelta(seconds=1)):
        return events_ingest(app=app, items=[EventInput(event_id, name, device_ids, occurred_at=at)])[0].event


def click(tracker, at: datetime, **device_ids) -> Click:
    return click_record(
        tracker=tracker, clicked_at=at, device_ids=device_ids, click_id="clk", ip=None, user_agent="", parameters={}
    )


def rows_holding(value: str) -> list[str]:
    """Every row of our apps' tables with `value` in any column, each column read as text."""
    found = []
    for model in apps.get_models():
        if model._meta.app_label not in ("events", "postbacks", "partners"):
            continue
        for field in model._meta.concrete_fields:
            text = Cast(models.F(field.attname), models.TextField())
            for pk in model._default_manager.annotate(as_text=text).filter(as_text__icontains=value).values("pk"):
                found.append(f"{model._meta.label}.{field.name} of {pk['pk']}")
    return found


def snapshot(device: Device, *, leave_out: Event) -> dict:
    """A device's rows, as values: what an erasure of another device must not change."""
    events = Event.objects.filter(device=device).exclude(pk=leave_out.pk)
    deliveries = Delivery.objects.filter(event__in=events)
    return {
        "device": Device.objects.filter(pk=device.pk).values().get(),
        "identifiers": sorted(device.identifiers.values_list("kind", "value")),
        "events": list(events.order_by("pk").values()),
        "deliveries": list(deliveries.order_by("pk").values()),
        "attempts": list(Attempt.objects.filter(delivery__in=deliveries).order_by("pk").values()),
    }


@pytest.fixture
def world(app, partner, receiver, allow_private):
    """Two devices of one app, with clicks, attributed installs, events, deliveries (some sent,
    some pending) and one event whose ids both devices own (stored on the older one)."""
    tracker = factories.make_tracker(app, partner, campaign_name="Spring")
    config = factories.make_partner_configuration(app, partner)
    config.endpoint_base = receiver.url  # the partner's requests come here too
    config.save()
    factories.make_certified_postback(config, delay_seconds=600)  # still pending when the erasure comes
    for event in ("install", "purchase"):
        factories.make_custom_postback(app, event=event, url=receiver.url + "/in", macros=["adid", "idfv"])
    click(tracker, T0 - timedelta(hours=3), adid=OTHER_ADID)
    click(tracker, T0 - timedelta(hours=2), adid=ERASED_ADID)
    click(tracker, T0 - timedelta(hours=1), idfv=ERASED_IDFV)
    other_install = record(app, "other-install", "install", {"adid": OTHER_ADID}, T0)
    erased_install = record(
        app, "install", "install", {"adid": ERASED_ADID, "idfv": ERASED_IDFV}, T0 + timedelta(minutes=1)
    )
    record(app, "purchase", "purchase", {"adid": ERASED_ADID}, T0 + timedelta(minutes=2))
    shared = record(app, "shared", "purchase", {"adid": OTHER_ADID, "idfv": ERASED_IDFV}, T0 + timedelta(minutes=3))
    record(app, "other-purchase", "purchase", {"adid": OTHER_ADID}, T0 + timedelta(minutes=4))
    with clock.frozen(T0 + timedelta(minutes=5)):
        assert deliveries_send(claim=deliveries_claim(limit=100)) == {"delivered": 5}  # the custom ones
    other, erased = other_install.device, erased_install.device
    assert shared.device == other and erased.network == partner  # the older device took the shared event
    return {"other": other, "erased": erased, "shared": shared, "tracker": tracker}


def test_after_an_erasure_no_row_holds_the_devices_ids_and_other_devices_are_untouched(app, world):
    assert all(rows_holding(value) for value in ERASED_VALUES)  # the search finds them before
    other_before = snapshot(world["other"], leave_out=world["shared"])
    erased_events = Event.objects.filter(device=world["erased"]).count() + 1  # and the shared one
    erased_deliveries = Delivery.objects.filter(event__device_ids__idfv=ERASED_IDFV).count() + 1  # + the purchase's
    erasure = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    assert erasure.pending_ids == {"adid": ERASED_ADID}

    erasure = erasure_process(erasure_id=erasure.pk)

    assert {value: rows_holding(value) for value in ERASED_VALUES} == {ERASED_ADID: [], ERASED_IDFV: []}
    assert snapshot(world["other"], leave_out=world["shared"]) == other_before
    assert Click.objects.filter(adid=OTHER_ADID).count() == 1
    assert (erasure.status, erasure.pending_ids) == ("completed", {})
    assert erasure.counts == {
        "devices": 1,
        "identifiers": 2,  # the idfv too, though the request named the adid only
        "events": erased_events,
        "clicks": 2,
        "deliveries": erased_deliveries,
        "attempts": 3,
    }
    assert (erased_events, erased_deliveries) == (3, 4)
    # The record keeps a keyed hash of what was asked, never the id.
    assert erasure.id_hashes == {"adid": device_id_hash(kind="adid", value=ERASED_ADID)}
    assert len(erasure.id_hashes["adid"]) == 64 and ERASED_ADID not in str(Erasure.objects.values().get())
    assert erasure.cutoff_at is not None and erasure.completed_at is not None


def test_the_hash_is_keyed_by_the_secret_key(settings):
    first = device_id_hash(kind="adid", value=ERASED_ADID)
    assert first == device_id_hash(kind="adid", value=ERASED_ADID)
    assert first != device_id_hash(kind="idfa", value=ERASED_ADID)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only"
    assert device_id_hash(kind="adid", value=ERASED_ADID) != first


def test_an_event_after_the_erasure_is_a_new_unattributed_device(app, world):
    erasure_process(erasure_id=erasure_request(app=app, device_ids={"idfv": ERASED_IDFV}).pk)
    # Clicked before, installed before: none of it counts any more.
    event = record(app, "again", "install", {"adid": ERASED_ADID, "idfv": ERASED_IDFV}, T0 + timedelta(minutes=10))
    device = event.device
    assert device.pk != world["erased"].pk
    assert (device.install_count, event.is_reinstall, device.network, device.install_click) == (1, False, None, None)
    assert sorted(device.identifiers.values_list("value", flat=True)) == sorted(ERASED_VALUES)


def test_pending_and_claimed_deliveries_of_the_device_are_never_sent(app, world, receiver):
    sent_before = len(receiver.received)
    with clock.frozen(T0 + timedelta(minutes=20)):  # the certified postbacks' delay is over
        claim = deliveries_claim(limit=100)
        assert len(claim.ids) == 2  # both devices' installs: claimed, not yet sent
        erasure_process(erasure_id=erasure_request(app=app, device_ids={"adid": ERASED_ADID}).pk)
        # The claim's worker finds the erased device's delivery gone and sends only the other.
        assert deliveries_send(claim=claim) == {"delivered": 1}
    assert len(receiver.received) == sent_before + 1
    assert not Delivery.objects.filter(device=world["erased"].pk).exists()


def test_an_unknown_device_completes_with_nothing_erased(app, world):
    erasure = erasure_process(erasure_id=erasure_request(app=app, device_ids={"device_id": "never-seen"}).pk)
    assert erasure.status == "completed" and set(erasure.counts.values()) == {0}
    assert Device.objects.count() == 2


def test_an_erasure_is_processed_once(app, world):
    erasure = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    first = erasure_process(erasure_id=erasure.pk)
    record(app, "later", "install", {"adid": ERASED_ADID}, T0 + timedelta(minutes=10))  # new history
    again = erasure_process(erasure_id=erasure.pk)  # a task run twice
    assert (again.counts, again.completed_at) == (first.counts, first.completed_at)
    assert Event.objects.filter(event_id="later").exists()


def test_an_erasure_covers_one_app_only(app, other_app, world):
    other_event = record(other_app, "install", "install", {"adid": ERASED_ADID}, T0)
    erasure_process(erasure_id=erasure_request(app=app, device_ids={"adid": ERASED_ADID}).pk)
    assert Event.objects.filter(pk=other_event.pk).exists()


def test_the_dispatcher_queues_each_pending_erasure_once_until_its_lease_runs_out(app):
    erasure = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    with clock.frozen(T0) as frozen:
        assert erasures_claim(limit=10) == [erasure.pk]
        assert erasures_claim(limit=10) == []  # queued: a worker has it
        frozen.advance(timedelta(minutes=3))  # lost (a killed worker): queued again
        assert erasures_claim(limit=10) == [erasure.pk]
        erasure_process(erasure_id=erasure.pk)
        frozen.advance(timedelta(minutes=3))
        assert erasures_claim(limit=10) == []


def run_queued_tasks(broker) -> list[str]:
    """What a django-q2 worker does with each queued task: import its function and call it."""
    functions = []
    while tasks := broker.dequeue():
        for task_id, payload in tasks:
            task = SignedPackage.loads(payload)
            module, name = task["func"].rsplit(".", 1)
            getattr(importlib.import_module(module), name)(*task["args"])
            functions.append(task["func"])
            if task_id is not None:
                broker.acknowledge(task_id)
    return functions


def test_the_dispatcher_hands_a_pending_erasure_to_the_workers(app):
    record(app, "install", "install", {"adid": ERASED_ADID}, T0)
    broker = get_broker()
    broker.purge_queue()
    erasure = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    call_command("dispatch_postbacks", "--once")
    assert run_queued_tasks(broker) == ["postbacks.tasks.process_erasure"]
    erasure.refresh_from_db()
    assert (erasure.status, erasure.counts["devices"], erasure.counts["events"]) == ("completed", 1, 1)


# --- concurrency (PostgreSQL: SQLite serialises writers) ----------------------------------


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter; SQLite serialises them")


def waiting_on_a_lock(thread: threading.Thread, seconds: float = 0.5) -> bool:
    """The thread is still running after `seconds`, its connection waiting on a lock."""
    thread.join(timeout=seconds)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return thread.is_alive() and waiting > 0


@pytest.mark.django_db(transaction=True)
def test_an_event_arriving_while_the_erasure_runs_waits_and_starts_a_new_device(app, partner):
    postgresql_only()
    tracker = factories.make_tracker(app, partner)
    click(tracker, T0 - timedelta(hours=1), adid=ERASED_ADID)
    erased = record(app, "install", "install", {"adid": ERASED_ADID}, T0).device
    assert erased.network == partner
    erasure = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    outcome = {}

    def send_event():
        try:
            outcome["event"] = record(app, "during", "purchase", {"adid": ERASED_ADID}, T0 + timedelta(minutes=1))
        finally:
            connections.close_all()

    def send_another_devices_event():
        try:
            outcome["other"] = record(app, "other", "install", {"adid": OTHER_ADID}, T0 + timedelta(minutes=1))
        finally:
            connections.close_all()

    with transaction.atomic():  # the worker's transaction, held open past the erasure's work
        erasure_process(erasure_id=erasure.pk)
        other_sender = threading.Thread(target=send_another_devices_event)
        other_sender.start()
        other_sender.join(timeout=10)
        assert "other" in outcome  # the app's other devices are not held up
        sender = threading.Thread(target=send_event)
        sender.start()
        assert waiting_on_a_lock(sender)  # its device is locked (and deleted) by the erasure
    sender.join(timeout=10)
    event = outcome["event"]
    assert event.device_id != erased.pk  # retried after the erasure: a new device
    device = Device.objects.get(pk=event.device_id)
    assert (device.installed_at, device.network) == (None, None)
    assert not Device.objects.filter(pk=erased.pk).exists()
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["during", "other"]


@pytest.mark.django_db(transaction=True)
def test_events_streaming_during_an_erasure_leave_nothing_from_before_its_cutoff(app):
    postgresql_only()
    record(app, "first", "install", {"adid": ERASED_ADID, "idfv": ERASED_IDFV}, T0)
    stop = threading.Event()
    errors = []

    def stream(name: str):
        number = 0
        try:
            while not stop.is_set():
                number += 1
                ids = {"adid": ERASED_ADID} if number % 2 else {"idfv": ERASED_IDFV}
                data = EventInput(f"{name}-{number}", "purchase", ids, occurred_at=T0 + timedelta(minutes=1))
                events_ingest(app=app, items=[data])
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    streams = [threading.Thread(target=stream, args=(f"s{index}",)) for index in range(2)]
    for thread in streams:
        thread.start()
    time.sleep(0.3)  # events are flowing
    erasure = erasure_process(erasure_id=erasure_request(app=app, device_ids={"adid": ERASED_ADID}).pk)
    time.sleep(0.3)  # and flow on after it
    stop.set()
    for thread in streams:
        thread.join(timeout=10)
    assert errors == []
    assert erasure.counts["events"] > 1  # it did erase streamed events
    assert Event.objects.exists()
    # Every event left is on a device created after the cut-off (an event on the erased
    # device committing after it failed, and was retried as a new device's).
    assert not Event.objects.filter(device__created_at__lte=erasure.cutoff_at).exists()
    assert not Device.objects.filter(created_at__lte=erasure.cutoff_at).exists()


# --- the admin ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "support"])
def test_staff_read_their_accounts_erasures_and_never_the_ids(client, request, role, app, other_app):
    ours = erasure_request(app=app, device_ids={"adid": ERASED_ADID})
    theirs = erasure_request(app=other_app, device_ids={"adid": OTHER_ADID})
    client.force_login(request.getfixturevalue(role))
    listing = client.get(reverse("admin:postbacks_erasure_changelist")).content.decode()
    assert str(ours.pk) in listing and str(theirs.pk) not in listing
    change_url = reverse("admin:postbacks_erasure_change", args=[ours.pk])
    page = client.get(change_url).content.decode()
    assert ours.id_hashes["adid"] in page and ERASED_ADID not in page  # pending: the ids wait unseen
    assert 'name="_save"' not in page
    assert client.post(change_url, {"status": "completed"}).status_code == 403
    assert client.get(reverse("admin:postbacks_erasure_add")).status_code == 403
    other_page = client.get(reverse("admin:postbacks_erasure_change", args=[theirs.pk]))
    assert other_page.status_code == 302  # "does not exist": back to the admin index
    ours.refresh_from_db()
    assert ours.status == "pending"
