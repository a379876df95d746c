"""Sending postbacks to a real HTTP receiver on 127.0.0.1, with a controllable clock."""

import base64
import hashlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django import db
from django.conf import settings as django_settings
from django.core import checks

from events.services import EventInput
from postbacks import http, leases, selectors, sending
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery
from postbacks.sending import RETRY_SCHEDULE, deliveries_claim, deliveries_send, retry_delay
from postbacks.services import deliveries_resend
from project import clock
from project.logs import JsonFormatter, PlainFormatter
from tests import factories
from tests.receiver import Receiver, Reply, TricklingReceiver

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def frozen():
    with clock.frozen(T0) as moving_clock:
        yield moving_clock


def ingest(app, event_id="e1", name="install"):
    data = EventInput(
        event_id=event_id,
        name=name,
        device_ids={"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
        occurred_at=clock.now(),
        revenue=None,
    )
    return events_ingest(app=app, items=[data])[0].event


def send_due() -> dict:
    return deliveries_send(claim=deliveries_claim(limit=100))


@pytest.fixture
def postback(app, receiver, allow_private):
    return factories.make_custom_postback(
        app, url=receiver.url + "/in/{event_name}", macros=["adid", "event_id"], retry_attempts=3
    )


def test_a_postback_is_delivered_and_logged(app, postback, receiver, frozen):
    event = ingest(app)
    assert event.postbacks_scheduled == 1
    assert send_due() == {"delivered": 1}
    request = receiver.wait_for(1)[0]
    delivery = Delivery.objects.get()
    assert (request.method, request.path) == ("GET", "/in/install")
    assert request.query == {"adid": ["38400000-8cf0-11bd-b23e-10b96e40000d"], "event_id": ["e1"]}
    assert request.headers["x-delivery-id"] == str(delivery.delivery_id)
    assert request.headers["user-agent"] == "postback-server/1"
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    attempt = delivery.attempt_log.get()
    assert (attempt.outcome, attempt.response_status, attempt.response_body) == ("delivered", 200, "ok")
    assert attempt.url == delivery.url and attempt.started_at == T0


def test_a_reply_with_nul_bytes_is_logged_not_lost(app, postback, receiver, frozen):
    receiver.default = Reply(body="ok\x00done")  # PostgreSQL text cannot hold a NUL
    ingest(app)
    assert send_due() == {"delivered": 1}
    assert Attempt.objects.get().response_body == "ok\ufffddone"


def test_nothing_is_sent_before_it_is_due(app, receiver, allow_private, frozen):
    factories.make_custom_postback(app, url=receiver.url + "/late", delay_seconds=120)
    ingest(app)
    frozen.advance(timedelta(seconds=119))
    assert send_due() == {}
    frozen.advance(timedelta(seconds=1))
    assert send_due() == {"delivered": 1}


def test_server_errors_are_retried_with_backoff_and_the_same_delivery_id(app, postback, receiver, frozen):
    receiver.replies = [Reply(status=500, body="boom"), Reply(status=503)]
    ingest(app)
    assert send_due() == {"retry": 1}
    delivery = Delivery.objects.get()
    wait = (delivery.due_at - T0).total_seconds()
    assert RETRY_SCHEDULE[0] * 0.8 <= wait <= RETRY_SCHEDULE[0] * 1.2
    assert (delivery.status, delivery.last_error) == ("scheduled", "HTTP 500")
    assert send_due() == {}  # not yet
    frozen.advance(timedelta(seconds=wait))
    assert send_due() == {"retry": 1}
    delivery.refresh_from_db()
    second_wait = (delivery.due_at - clock.now()).total_seconds()
    assert RETRY_SCHEDULE[1] * 0.8 <= second_wait <= RETRY_SCHEDULE[1] * 1.2
    frozen.advance(timedelta(seconds=second_wait))
    assert send_due() == {"delivered": 1}
    ids = {request.headers["x-delivery-id"] for request in receiver.wait_for(3)}
    assert ids == {str(delivery.delivery_id)}
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == ["retry", "retry", "delivered"]


def test_retry_after_is_honoured_within_bounds_and_429_waits_a_minute(app, postback, receiver, frozen):
    receiver.replies = [Reply(status=503, headers={"Retry-After": "50"})]
    ingest(app, "a")
    send_due()
    wait = (Delivery.objects.get().due_at - T0).total_seconds()
    assert 48 <= wait <= 50  # asked 50 s; at most twice the scheduled ~30 s
    receiver.replies = [Reply(status=429)]
    ingest(app, "b")
    send_due()
    assert (Delivery.objects.get(event__event_id="b").due_at - T0).total_seconds() >= 60


@pytest.mark.parametrize(("status", "message"), [(404, "HTTP 404"), (400, "HTTP 400"), (302, "not followed")])
def test_other_statuses_fail_at_once(app, postback, receiver, frozen, status, message):
    receiver.replies = [Reply(status=status, headers={"Location": receiver.url + "/elsewhere"})]
    ingest(app)
    assert send_due() == {"failed": 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert message in delivery.last_error
    assert len(receiver.wait_for(1, timeout=0.5)) == 1  # the redirect was not followed


def test_retries_stop_after_the_configured_attempts(app, receiver, allow_private, frozen):
    factories.make_custom_postback(app, url=receiver.url, retry_attempts=1)
    receiver.default = Reply(status=500)
    ingest(app)
    send_due()
    frozen.advance(timedelta(minutes=1))
    assert send_due() == {"failed": 1}
    delivery = Delivery.objects.get()
    assert delivery.last_error == "HTTP 500; gave up after 2 attempts"
    frozen.advance(timedelta(days=2))
    assert send_due() == {}


def test_do_not_retry_means_one_attempt(app, receiver, allow_private, frozen):
    factories.make_custom_postback(app, url=receiver.url, retry_attempts=0)
    receiver.default = Reply(status=502)
    ingest(app)
    assert send_due() == {"failed": 1}


def test_timeouts_and_refused_connections_are_retried(app, receiver, allow_private, frozen, settings):
    settings.POSTBACK_TOTAL_TIMEOUT = 1
    factories.make_custom_postback(app, url=receiver.url + "/slow")
    receiver.replies = [Reply(delay=2)]
    ingest(app, "slow")
    assert send_due() == {"retry": 1}
    assert Delivery.objects.get(event__event_id="slow").last_error.startswith("Timed out")


def test_connection_refused_is_retried(app, allow_private, frozen):
    factories.make_custom_postback(app, url="http://127.0.0.1:9/closed")
    ingest(app)
    assert send_due() == {"retry": 1}
    assert Delivery.objects.get().last_error.startswith("Connection failed")


def test_private_destinations_are_refused_at_connect_time(app, receiver, allow_private, frozen, settings):
    factories.make_custom_postback(app, url=receiver.url.replace("127.0.0.1", "localhost") + "/x")
    ingest(app)
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = False  # e.g. DNS now points somewhere private
    assert send_due() == {"failed": 1}
    delivery = Delivery.objects.get()
    assert "Refused: localhost resolves to 127.0.0.1 is a loopback address" in delivery.last_error
    assert receiver.wait_for(1, timeout=0.5) == []


def test_signed_requests_verify_with_the_standard_webhooks_algorithm(app, receiver, allow_private, frozen):
    factories.make_custom_postback(app, url=receiver.url, method="POST", macros=["adid"], signing_secret=SECRET)
    ingest(app)
    send_due()
    request = receiver.wait_for(1)[0]
    key = base64.b64decode(SECRET[len("whsec_") :])
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.{request.body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    assert request.headers["webhook-id"] == request.headers["x-delivery-id"]
    assert request.headers["webhook-timestamp"] == str(int(T0.timestamp()))


def test_secrets_are_masked_in_the_attempt_log(app, partner, receiver, allow_private, frozen):
    partner.templates.filter(event="install").update(url_template=receiver.url + "/p/{fields.app_id}")
    config = factories.make_partner_configuration(app, partner, app_id="4242", token="s3cr3t-token")
    factories.make_certified_postback(config, delivery_method="all")
    ingest(app)
    send_due()
    assert receiver.wait_for(1)[0].query["t"] == ["s3cr3t-token"]
    attempt = Attempt.objects.get()
    assert "s3cr3t-token" not in attempt.url and "t=••••" in attempt.url


def in_flight_per_destination() -> int:
    return django_settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION


def outlive(claim, frozen) -> None:
    """Move the clock past the claim's lease."""
    frozen.advance(claim.lease - clock.now() + timedelta(seconds=1))


def test_a_lost_worker_only_delays_the_delivery(app, postback, receiver, frozen):
    ingest(app)
    claimed = deliveries_claim(limit=10)
    assert claimed.ids and deliveries_claim(limit=10).ids == []  # nobody else gets it while leased
    outlive(claimed, frozen)  # the worker died without a word
    reclaimed = deliveries_claim(limit=10)
    assert reclaimed.ids == claimed.ids
    assert deliveries_send(claim=reclaimed) == {"delivered": 1}
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get().attempts == 1


def test_a_stale_worker_cannot_overwrite_the_new_owners_outcome(app, postback, receiver, frozen):
    ingest(app)
    first = deliveries_claim(limit=10)
    outlive(first, frozen)
    second = deliveries_claim(limit=10)
    assert deliveries_send(claim=second) == {"delivered": 1}
    assert deliveries_send(claim=first) == {}  # the old claim is gone: nothing sent twice
    assert len(receiver.wait_for(2, timeout=0.5)) == 1


def test_a_claim_that_waited_past_its_lease_is_not_sent_beside_its_new_owner(app, postback, receiver, frozen):
    ingest(app)
    stale = deliveries_claim(limit=10)  # queued behind a slow batch while its lease ran out
    outlive(stale, frozen)
    taken_over = deliveries_claim(limit=10)
    assert taken_over.ids == stale.ids
    assert deliveries_send(claim=stale) == {}  # the new owner has not finished: still not sent twice
    assert deliveries_send(claim=taken_over) == {"delivered": 1}
    assert len(receiver.wait_for(2, timeout=0.5)) == 1


def test_a_claim_taken_up_late_but_not_taken_over_is_still_sent(app, postback, receiver, frozen):
    ingest(app)
    claim = deliveries_claim(limit=10)
    outlive(claim, frozen)  # nobody reclaimed it meanwhile
    assert deliveries_send(claim=claim) == {"delivered": 1}
    assert deliveries_claim(limit=10).ids == []  # the renewed lease keeps it from being reclaimed
    assert len(receiver.wait_for(1)) == 1


def test_a_cluster_that_takes_claims_and_sends_nothing_counts_as_stalled(app, postback, receiver, frozen):
    stall = timedelta(seconds=10)
    ingest(app)
    assert not selectors.workers_stalled(after=stall)  # due just now
    claim = deliveries_claim(limit=10)  # the dispatcher queued it; no worker runs it
    frozen.advance(stall - timedelta(seconds=1))
    assert not selectors.workers_stalled(after=stall)
    frozen.advance(timedelta(seconds=2))
    assert selectors.workers_stalled(after=stall)  # long before its lease runs out
    assert deliveries_send(claim=claim) == {"delivered": 1}
    assert not selectors.workers_stalled(after=stall)  # an attempt was just recorded


def test_a_cluster_that_records_attempts_is_not_stalled_by_one_long_claim(app, postback, receiver, frozen):
    stall = timedelta(seconds=10)
    ingest(app, "first")
    ingest(app, "second")
    long_claim = deliveries_claim(limit=1)  # e.g. a batch whose request hangs
    frozen.advance(timedelta(seconds=6))
    assert deliveries_send(claim=deliveries_claim(limit=1)) == {"delivered": 1}  # the cluster works on
    frozen.advance(timedelta(seconds=5))
    assert not selectors.workers_stalled(after=stall)  # claimed 11 s ago, but an attempt 5 s ago
    frozen.advance(timedelta(seconds=6))
    assert selectors.workers_stalled(after=stall)  # and now nothing for 11 s
    assert deliveries_send(claim=long_claim) == {"delivered": 1}


def test_resend_sends_a_failed_delivery_again_with_its_id(app, receiver, allow_private, frozen):
    factories.make_custom_postback(app, url=receiver.url, retry_attempts=0)
    receiver.replies = [Reply(status=400)]
    ingest(app)
    send_due()
    assert deliveries_resend(deliveries=Delivery.objects.all()) == 1
    assert send_due() == {"delivered": 1}
    first, second = receiver.wait_for(2)
    assert first.headers["x-delivery-id"] == second.headers["x-delivery-id"]
    assert Delivery.objects.get().attempts == 2


def test_retry_schedule_has_jitter_and_bounds():
    rng = random.Random(7)
    for number, base in enumerate(RETRY_SCHEDULE, start=1):
        waits = {retry_delay(retry_number=number, rng=rng).total_seconds() for _ in range(50)}
        assert min(waits) >= base * 0.8 and max(waits) <= base * 1.2
        assert len(waits) > 40  # jittered, not fixed
    assert retry_delay(retry_number=1, retry_after="1", rng=rng).total_seconds() >= 24  # never sooner than planned
    assert retry_delay(retry_number=1, retry_after="99999", rng=rng).total_seconds() <= 72  # never past 2x
    http_date = "Mon, 02 Nov 2026 09:00:45 GMT"
    with clock.frozen(T0):
        assert 45 - 0.01 <= retry_delay(retry_number=1, retry_after=http_date, rng=rng).total_seconds() <= 72


def test_every_attempt_is_logged_with_its_fields_and_without_secrets(
    app, partner, receiver, allow_private, frozen, caplog
):
    partner.templates.filter(event="install").update(url_template=receiver.url + "/p/{fields.app_id}")
    config = factories.make_partner_configuration(app, partner, app_id="4242", token="s3cr3t-token")
    postback = factories.make_certified_postback(config, delivery_method="all")
    receiver.replies = [Reply(status=503)]
    ingest(app)
    with caplog.at_level(logging.INFO, logger="postbacks.delivery"):
        send_due()
    [record] = [record for record in caplog.records if record.name == "postbacks.delivery"]
    line = json.loads(JsonFormatter().format(record))
    delivery = Delivery.objects.get()
    assert line["message"] == "postback attempt"
    assert line["delivery_id"] == str(delivery.delivery_id)
    assert line["partner"] == partner.slug and line["configuration"] == postback.pk
    assert line["status"] == 503 and line["outcome"] == "retry" and line["attempt"] == 1
    assert isinstance(line["duration_ms"], int)
    assert "s3cr3t-token" not in json.dumps(line) and "s3cr3t-token" not in PlainFormatter().format(record)


def test_a_connection_error_does_not_put_the_query_into_the_log(app, allow_private, frozen):
    with socket.socket() as closed:  # a port with nothing listening: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    factories.make_custom_postback(app, url=f"http://127.0.0.1:{port}/pb?token=s3cr3t-token", retry_attempts=0)
    ingest(app)
    send_due()
    attempt = Attempt.objects.get()
    assert attempt.response_status is None and "Connection failed" in attempt.error
    assert "s3cr3t-token" not in attempt.error


@pytest.mark.django_db(transaction=True)  # the slow request records itself from its own thread
def test_a_hanging_destination_does_not_hold_up_the_task_and_records_itself_later(app, allow_private, settings):
    settings.POSTBACK_TOTAL_TIMEOUT = 2

    with Receiver() as healthy, Receiver() as hanging:
        hanging.default = Reply(delay=5)
        factories.make_custom_postback(app, url=healthy.url + "/ok", retry_attempts=2)
        factories.make_custom_postback(app, url=hanging.url + "/hang", retry_attempts=2)
        ingest(app)
        started = time.monotonic()
        counts = deliveries_send(claim=deliveries_claim(limit=10), wait_seconds=0.5)
        assert time.monotonic() - started < 1.5  # not the 2 s deadline
        assert counts == {"delivered": 1, "still_sending": 1}
        assert len(healthy.wait_for(1)) == 1
        slow = Delivery.objects.get(url__contains="/hang")
        deadline = time.monotonic() + 10
        while slow.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            slow.refresh_from_db()
        assert slow.status == Delivery.Status.SCHEDULED and slow.attempts == 1  # timed out, retry scheduled
        assert "Timed out" in slow.attempt_log.get().error


def test_a_host_with_no_free_slot_is_deferred_without_spending_an_attempt(app, postback, receiver, frozen, monkeypatch):
    monkeypatch.setattr(leases, "HOST_SLOT_WAIT", 0.05)
    monkeypatch.setattr(http, "pace_clock", lambda: 1000.0)  # its requests have just started: not slow
    ingest(app)
    host = http.host_of(receiver.url)
    taken = [http.slots_take(destination=host, account=None, timeout=1) for _ in range(in_flight_per_destination())]
    try:
        assert all(isinstance(slot, http.Slots) for slot in taken)
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"deferred": 1}
    finally:
        for slot in taken:
            slot.release()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SCHEDULED and delivery.attempts == 0
    assert delivery.due_at == T0 + sending.HOST_BUSY_DEFER and delivery.deferrals == 1
    frozen.advance(sending.HOST_BUSY_DEFER)
    assert send_due() == {"delivered": 1}


def test_a_slow_host_with_no_free_slot_is_deferred_for_as_long_as_its_requests_take(
    app, postback, receiver, frozen, monkeypatch
):
    monkeypatch.setattr(leases, "HOST_SLOT_WAIT", 0.05)
    ingest(app)
    host = http.host_of(receiver.url)
    taken = [http.slots_take(destination=host, account=None, timeout=1) for _ in range(in_flight_per_destination())]
    taken.pop().release(seconds=12.0)  # its requests take 12 s...
    taken.append(http.slots_take(destination=host, account=None, timeout=1))  # ...and every slot is taken again
    try:
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"deferred": 1}
    finally:
        for slot in taken:
            slot.release(seconds=12.0)
    delivery = Delivery.objects.get()
    assert delivery.attempts == 0 and delivery.due_at == T0 + timedelta(seconds=12)
    assert delivery.deferrals == 1


def test_each_deferral_to_a_slow_host_waits_twice_as_long_up_to_a_minute():
    waits = [
        sending.deferral_wait(deferrals=count, host_slow=True, host_pace=0.0).total_seconds() for count in range(6)
    ]
    assert waits == [5, 10, 20, 40, 60, 60]
    assert sending.deferral_wait(deferrals=0, host_slow=True, host_pace=12.0) == timedelta(seconds=12)
    # A fast host that was merely at its limit is tried again soon, however often that happened.
    assert sending.deferral_wait(deferrals=7, host_slow=False, host_pace=0.01) == sending.HOST_BUSY_DEFER


def test_a_batch_is_recorded_with_a_few_statements_not_a_few_per_delivery(
    app, postback, receiver, frozen, django_assert_max_num_queries
):
    items = [
        EventInput(event_id=f"b-{n}", name="install", device_ids={"device_id": f"d-{n}"}, occurred_at=clock.now())
        for n in range(30)
    ]
    events_ingest(app=app, items=items)
    claim = deliveries_claim(limit=100)
    # 9 for the deliveries and attempts, 1 for the statistics' rollups (postbacks/rollups.py), 6 for the
    # alert state of their configuration (postbacks/alerts.py): per batch, whatever its size.
    with django_assert_max_num_queries(16):
        assert deliveries_send(claim=claim) == {"delivered": 30}
    assert Attempt.objects.count() == 30


# --- a slow partner costs one attempt per try, then ends -------------------------------------


def test_a_receiver_that_trickles_costs_one_attempt_per_try_then_the_delivery_fails(
    app, allow_private, frozen, settings
):
    settings.POSTBACK_TOTAL_TIMEOUT = 1
    with TricklingReceiver(part="body", interval=0.2, stop_after=6) as trickling:
        factories.make_custom_postback(app, url=trickling.url + "/pb", retry_attempts=1)
        ingest(app)
        started = time.monotonic()
        assert send_due() == {"retry": 1}
        assert time.monotonic() - started < 2  # not the 6 s the receiver would trickle for
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("scheduled", 1, "Timed out after 1 s")
        frozen.advance(delivery.due_at - clock.now())
        assert send_due() == {"failed": 1}
        assert trickling.count() == 2  # one request per attempt: never sent again behind its back
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.last_error == "Timed out after 1 s; gave up after 2 attempts"
    attempts = list(delivery.attempt_log.order_by("number").values_list("number", "outcome", "response_status"))
    assert attempts == [(1, "retry", None), (2, "failed", None)]
    assert all(900 <= duration < 2000 for duration in delivery.attempt_log.values_list("duration_ms", flat=True))


def test_the_lease_derives_from_the_total_deadline(settings):
    settings.POSTBACK_TOTAL_TIMEOUT = 15
    default = leases.lease_duration()
    settings.POSTBACK_TOTAL_TIMEOUT = 45
    assert leases.lease_duration() - default == timedelta(seconds=30)
    # a batch: handed to threads within HAND_OUT_LIMIT, then a slot wait and the deadline
    assert leases.batch_longest() == timedelta(seconds=leases.HAND_OUT_LIMIT + leases.HOST_SLOT_WAIT + 45)
    assert leases.lease_duration() > leases.batch_longest()


def test_start_up_refuses_a_stall_limit_a_healthy_batch_could_reach(settings):
    settings.POSTBACK_TOTAL_TIMEOUT = 15
    settings.WORKER_STALL_SECONDS = 60
    assert [error.id for error in checks.run_checks() if error.id.startswith("postbacks.")] == []
    settings.WORKER_STALL_SECONDS = 20  # a batch whose requests all wait out 15 s takes 20.25 s
    [error] = [error for error in checks.run_checks() if error.id.startswith("postbacks.")]
    assert error.id == "postbacks.E002" and "WORKER_STALL_SECONDS=20" in error.msg


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTBACK_CONNECT_TIMEOUT": "20", "POSTBACK_TOTAL_TIMEOUT": "10"}, "part of the total deadline"),
        ({"POSTBACK_READ_TIMEOUT": "10"}, "Set POSTBACK_TOTAL_TIMEOUT"),
        ({"POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT": "32"}, "could hold every sending thread"),
        ({"POSTBACK_SEND_THREADS": "8", "POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT": "8"}, "must be below"),
    ],
)
def test_start_up_refuses_impossible_delivery_settings(tmp_path, env, message):
    from tests.project.test_settings import start

    result = start(tmp_path, SECRET_KEY="x" * 50, **env)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]


@pytest.mark.django_db(transaction=True)  # the first claim's request runs in a thread of its own
def test_a_request_that_outlived_its_claim_is_dropped_not_recorded_over_the_new_owner(
    app, postback, receiver, frozen, caplog
):
    receiver.replies = [Reply(delay=1)]  # the first request is slow; the new owner's is not
    ingest(app)
    first = deliveries_claim(limit=10)
    result: dict = {}

    def send_first_claim():
        try:
            result["counts"] = deliveries_send(claim=first)
        except Exception as error:  # the old code: IntegrityError on the attempt number
            result["error"] = error
        finally:
            db.connections.close_all()

    thread = threading.Thread(target=send_first_claim)
    with caplog.at_level(logging.WARNING, logger="postbacks.delivery"):
        thread.start()
        receiver.wait_for(1)  # in flight...
        outlive(first, frozen)  # ...past its lease: the row is claimed again and delivered
        second = deliveries_claim(limit=10)
        assert second.ids == first.ids
        assert deliveries_send(claim=second) == {"delivered": 1}
        thread.join(timeout=10)
    assert result == {"counts": {"claim_lost": 1}}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert list(delivery.attempt_log.values_list("number", "outcome")) == [(1, "delivered")]
    [warning] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "claimed again" in warning.getMessage() and warning.delivery_id == str(delivery.delivery_id)


# --- one account's slow partners do not starve another account -------------------------------


def staggered(slow: Receiver, first: float) -> None:
    """Slow answers, 0.3 s apart by path (/a first): on SQLite's in-memory test database two
    threads recording at the same moment would find the table locked."""
    slow.reply_for = lambda request: Reply(delay=first + 0.3 * "abc".index(request.path[1]))


def wait_recorded(count: int) -> None:
    """Stragglers record themselves from their threads: wait for them (or the test's data
    would be flushed under them)."""
    deadline = time.monotonic() + 10
    while Attempt.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_one_account_holds_at_most_its_share_of_requests_and_the_others_go_out(app, other_app, allow_private, settings):
    settings.POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT = 2
    with Receiver() as slow, Receiver() as fast:
        staggered(slow, first=1)
        for path in ("/a", "/b", "/c"):
            factories.make_custom_postback(app, url=slow.url + path, retry_attempts=2)
        factories.make_custom_postback(other_app, url=fast.url + "/b", retry_attempts=2)
        ingest(app)
        ingest(other_app)
        started = time.monotonic()
        counts = deliveries_send(claim=deliveries_claim(limit=10), wait_seconds=0.5)
        assert time.monotonic() - started < 1  # the worker did not wait for the slow requests
        assert counts == {"still_sending": 2, "deferred": 1, "delivered": 1}
        wait_recorded(3)
    waiting = Delivery.objects.get(attempts=0)
    assert waiting.app == app and waiting.status == Delivery.Status.SCHEDULED and waiting.deferrals == 1
    assert Delivery.objects.get(app=other_app).status == Delivery.Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_one_destination_holds_at_most_its_share_of_requests(app, allow_private, settings):
    settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION = 1
    with Receiver() as slow, Receiver() as fast:
        slow.default = Reply(delay=1)
        factories.make_custom_postback(app, url=slow.url + "/a", retry_attempts=2)
        factories.make_custom_postback(app, url=slow.url + "/b", retry_attempts=2)
        factories.make_custom_postback(app, url=fast.url + "/c", retry_attempts=2)
        ingest(app)
        counts = deliveries_send(claim=deliveries_claim(limit=10), wait_seconds=0.5)
        assert counts == {"still_sending": 1, "deferred": 1, "delivered": 1}
        wait_recorded(2)
    assert Delivery.objects.get(attempts=0).url.startswith(slow.url)


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_threads_all_wait_on_slow_requests_defers_the_rest_rather_than_wait(
    app, other_app, allow_private, settings
):
    settings.POSTBACK_SEND_THREADS = 3
    settings.POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT = 2
    with Receiver() as slow, Receiver() as fast:
        staggered(slow, first=1.5)
        factories.make_custom_postback(app, url=slow.url + "/a", retry_attempts=2)
        factories.make_custom_postback(app, url=slow.url + "/b", retry_attempts=2)
        factories.make_custom_postback(other_app, url=slow.url + "/c", retry_attempts=2)
        ingest(app)
        ingest(other_app)
        factories.make_custom_postback(other_app, url=fast.url + "/d", retry_attempts=2)
        ingest(other_app, "e2")  # due after the three slow ones: every thread is taken by then
        started = time.monotonic()
        counts = deliveries_send(claim=deliveries_claim(limit=10), wait_seconds=0.5)
        assert time.monotonic() - started < 1.2  # not the 1.5 s of a slow request
        assert counts == {"still_sending": 3, "deferred": 2}  # e2's two postbacks
        wait_recorded(3)
    back = Delivery.objects.filter(attempts=0)
    assert back.count() == 2 and {delivery.status for delivery in back} == {"scheduled"}
    assert all(delivery.due_at - delivery.created_at < timedelta(seconds=5) for delivery in back)
