"""project.bulk.rows_insert: what it stores is what the ORM would have stored, in order."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from events.models import Device, Event
from project.bulk import rows_insert, rows_update_held

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)


def test_rows_come_back_with_their_keys_and_every_value_intact(app):
    devices = [Device(app=app), Device(app=app)]
    rows_insert(Device, devices)
    assert all(device.pk for device in devices) and devices[0].created_at is not None  # auto_now_add filled
    events = [
        Event(
            app=app,
            event_id=f"e{number}",
            name="purchase",
            device=devices[number % 2],
            device_ids={"adid": "a&b=c", "nested": {"x": [1, "ü"]}},
            occurred_at=AT,
            received_at=AT,
            ip="2001:db8::1" if number else "203.0.113.7",
            user_agent='quote " and \\\\ backslash',
            revenue=Decimal("4.990001") if number else None,
            currency="USD",
            properties={"screen": "shop", "n": 3.5, "ok": True, "none": None},
            is_reinstall=bool(number),
        )
        for number in range(3)
    ]
    rows_insert(Event, events)
    assert [event.pk for event in events] == sorted(event.pk for event in events)
    for event in events:
        stored = Event.objects.get(pk=event.pk)
        for field in Event._meta.concrete_fields:
            assert getattr(stored, field.attname) == getattr(event, field.attname), field.name


def test_a_row_pointing_at_an_object_saved_after_assignment_gets_its_key(app, django_assert_num_queries):
    device = Device(app=app)
    event = Event(app=app, event_id="e1", name="install", device=device, occurred_at=AT, received_at=AT)
    rows_insert(Device, [device])  # saved after the event was pointed at it
    rows_insert(Event, [event])
    assert Event.objects.get(pk=event.pk).device_id == device.pk
    with django_assert_num_queries(0):  # the event still holds the device, as the ORM's would
        assert event.device is device


def test_a_held_update_leaves_alone_the_rows_changed_meanwhile(app):
    devices = [Device(app=app, campaign_name="a"), Device(app=app, campaign_name="a")]
    rows_insert(Device, devices)
    Device.objects.filter(pk=devices[1].pk).update(campaign_name="changed")
    was, new = {"campaign_name": "a"}, {"campaign_name": "b", "installed_at": AT}
    assert rows_update_held(Device, [(device.pk, was, new) for device in devices]) == {devices[0].pk}
    assert list(Device.objects.order_by("pk").values_list("campaign_name", "installed_at")) == [
        ("b", AT),
        ("changed", None),
    ]
