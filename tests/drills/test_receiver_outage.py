"""A receiver that is down for minutes, or that fails half of the time: the retries deliver
everything within the configured attempts. The cluster's parts run in-process here, with a
controllable clock, so minutes of backoff take a second."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from events.services import EventInput
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock
from tests import factories
from tests.drills.conftest import report
from tests.product import free_port
from tests.receiver import Receiver, Reply

pytestmark = [pytest.mark.drill, pytest.mark.django_db]

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)


def ingest(app, count: int) -> None:
    items = [
        EventInput(event_id=f"outage-{n}", name="install", device_ids={"device_id": f"d-{n}"}, occurred_at=clock.now())
        for n in range(count)
    ]
    events_ingest(app=app, items=items)


def run_workers_until(moving_clock, *, until: datetime, receiver_up_at: datetime | None = None, start_receiver=None):
    """Claim and send whatever is due, every STEP of simulated time."""
    while clock.now() < until:
        if receiver_up_at and clock.now() >= receiver_up_at and start_receiver:
            start_receiver()
            start_receiver = None
        claim = deliveries_claim(limit=500)
        if claim.ids:
            deliveries_send(claim=claim)
        if not Delivery.objects.exclude(status__in=[Delivery.Status.DELIVERED, Delivery.Status.FAILED]).exists():
            return
        moving_clock.advance(STEP)


def test_a_receiver_down_for_five_minutes_gets_everything_when_it_is_back(app, allow_private):
    port = free_port()  # nothing listens there until the receiver comes back: connection refused
    factories.make_custom_postback(app, url=f"http://127.0.0.1:{port}/pb", macros=["event_id"], retry_attempts=5)
    receivers: list[Receiver] = []

    def receiver_back():
        receivers.append(Receiver(port=port).__enter__())

    down_for = timedelta(minutes=5)
    with clock.frozen(T0) as moving_clock:
        ingest(app, 40)
        try:
            run_workers_until(
                moving_clock, until=T0 + timedelta(hours=2), receiver_up_at=T0 + down_for, start_receiver=receiver_back
            )
            back_after = clock.now() - (T0 + down_for)
        finally:
            for receiver in receivers:
                receiver.__exit__(None, None, None)
    deliveries = list(Delivery.objects.all())
    assert {delivery.status for delivery in deliveries} == {Delivery.Status.DELIVERED}
    assert all(delivery.attempts <= delivery.max_attempts for delivery in deliveries)
    # Down for 300 s: the attempts at 0, ~30 s and ~150 s are refused; the one at ~750 s arrives.
    assert {delivery.attempts for delivery in deliveries} == {4}
    seen = Counter(request.headers["x-delivery-id"] for request in receivers[0].received)
    assert len(seen) == 40 and max(seen.values()) == 1
    report(
        "receiver down 5 min",
        events=40,
        delivered=len(seen),
        attempts_max=max(delivery.attempts for delivery in deliveries),
        attempts_allowed=deliveries[0].max_attempts,
        delivered_after_back_s=int(back_after.total_seconds()),
    )


def test_a_receiver_failing_half_of_the_time_gets_everything_within_the_retry_budget(app, allow_private):
    rng = random.Random(20261123)  # seeded: the same coin tosses every run
    with Receiver(reply_for=lambda request: Reply(status=500 if rng.random() < 0.5 else 200)) as receiver:
        factories.make_custom_postback(app, url=receiver.url + "/pb", macros=["event_id"], retry_attempts=10)
        with clock.frozen(T0) as moving_clock:
            ingest(app, 100)
            run_workers_until(moving_clock, until=T0 + timedelta(days=2))
    deliveries = list(Delivery.objects.all())
    assert {delivery.status for delivery in deliveries} == {Delivery.Status.DELIVERED}
    assert all(delivery.attempts <= 11 for delivery in deliveries)
    answered_200 = Counter(request.headers["x-delivery-id"] for request in receiver.received if request.path == "/pb")
    assert len(answered_200) == 100
    attempts = [delivery.attempts for delivery in deliveries]
    report(
        "receiver 500 half of the time",
        events=100,
        delivered=100,
        attempts_mean=f"{sum(attempts) / len(attempts):.2f}",
        attempts_max=max(attempts),
        attempts_allowed=11,
    )
