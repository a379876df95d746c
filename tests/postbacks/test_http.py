"""The one outgoing HTTP module refuses private destinations when the socket is opened,
whatever form the address takes, and whatever a name resolves to at that moment."""

import threading
import time
import uuid

import pytest
from django.conf import settings as django_settings

from postbacks import http
from tests.receiver import TricklingReceiver

REFUSED = [
    ("http://127.0.0.1:9/in", "loopback"),
    ("http://127.8.9.10/in", "loopback"),
    ("http://10.1.2.3/in", "private"),
    ("http://172.16.5.4/in", "private"),
    ("http://172.31.255.254/in", "private"),
    ("http://192.168.0.10/in", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://100.64.0.1/in", "carrier-grade NAT"),  # RFC 6598
    ("http://[::1]/in", "loopback"),
    ("http://[fd00::1]/in", "private"),  # IPv6 unique-local
    ("http://[fe80::1]/in", "link-local"),
    ("http://[::ffff:127.0.0.1]/in", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:169.254.169.254]/in", "link-local"),
    ("http://2130706433/in", "loopback"),  # decimal 127.0.0.1
    ("http://0x7f000001/in", "loopback"),  # hexadecimal 127.0.0.1
    ("http://0xA9FEA9FE/in", "link-local"),  # hexadecimal 169.254.169.254
    ("http://0.0.0.0/in", ""),
    ("http://224.0.0.1/in", "multicast"),
    ("http://localhost:9/in", "loopback"),  # a name, resolved when the socket opens
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_private_destinations_are_refused_when_connecting(url, kind, settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = False
    exchange = http.send(method="GET", url=url, headers={}, body="")
    assert exchange.refused and exchange.status is None
    assert exchange.error.startswith("Refused:") and kind in exchange.error


def test_the_setting_lets_them_through(receiver, settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    exchange = http.send(method="GET", url=receiver.url + "/in", headers={}, body="")
    assert exchange.status == 200 and not exchange.refused


def test_redirects_are_not_followed_and_no_cookie_is_sent_back(receiver, settings):
    from tests.receiver import Reply

    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    receiver.replies = [Reply(status=302, headers={"Location": "http://169.254.169.254/", "Set-Cookie": "s=1"})]
    first = http.send(method="GET", url=receiver.url + "/a", headers={}, body="")
    second = http.send(method="GET", url=receiver.url + "/b", headers={}, body="")
    assert first.status == 302 and second.status == 200
    assert [request.path for request in receiver.wait_for(2)] == ["/a", "/b"]  # nothing went to the Location
    assert "cookie" not in receiver.received[1].headers  # one partner's cookie is not carried to the next


def take(host: str, *, timeout: float = 1, account: str | None = None):
    return http.slots_take(destination=host, account=account, timeout=timeout)


def fill(host: str, *, account: str | None = None) -> list:
    slots = [take(host, account=account) for _ in range(django_settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION)]
    assert all(isinstance(slot, http.Slots) for slot in slots)
    return slots


def release_all(slots: list, seconds: float | None = None) -> None:
    for slot in slots:
        slot.release(seconds=seconds)


def test_a_host_whose_requests_stopped_ending_is_refused_at_once(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(http, "pace_clock", lambda: now[0])
    host = f"{uuid.uuid4().hex}.example:80"
    held = fill(host)
    try:
        now[0] += http.QUIET_LIMIT + 0.01  # none of its requests ended since they started
        started = time.monotonic()
        busy = take(host, timeout=5)
        assert busy == http.Busy(limit="destination", slow=True, pace=0.0)
        assert time.monotonic() - started < 0.1  # no wait: the host has just started to hang
        held.pop().release(seconds=0.01)  # one answered fast after all
        held.append(take(host))
        assert isinstance(held[-1], http.Slots)
        started = time.monotonic()
        assert isinstance(take(host, timeout=0.2), http.Busy)  # answering again: worth a wait
        assert time.monotonic() - started >= 0.2
    finally:
        release_all(held)


def test_a_host_that_was_idle_is_not_taken_for_a_quiet_one(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(http, "pace_clock", lambda: now[0])
    host = f"{uuid.uuid4().hex}.example:80"
    take(host).release(seconds=0.01)
    now[0] += 60  # nothing to send for a minute, then a burst
    held = fill(host)
    try:
        started = time.monotonic()
        assert isinstance(take(host, timeout=0.2), http.Busy)  # its requests just started: worth a wait
        assert time.monotonic() - started >= 0.2
    finally:
        release_all(held)


def test_a_fast_host_is_waited_for_and_a_slow_one_refused_at_once():
    host = f"{uuid.uuid4().hex}.example:80"
    held = fill(host)
    try:
        started = time.monotonic()
        assert isinstance(take(host, timeout=0.2), http.Busy)  # its requests just started: worth a wait
        assert time.monotonic() - started >= 0.2
        held.pop().release(seconds=5.0)  # a request took 5 s: the host is slow
        held.append(take(host))  # a free slot is still taken
        assert isinstance(held[-1], http.Slots)
        started = time.monotonic()
        busy = take(host, timeout=5)  # no free slot: refused at once, no thread tied up
        assert busy.slow and busy.pace == 5.0
        assert time.monotonic() - started < 0.1
    finally:
        release_all(held)


def test_one_account_holds_at_most_its_share_of_requests_whatever_its_destinations(settings):
    settings.POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT = 3
    account, other = uuid.uuid4().hex, uuid.uuid4().hex
    held = [take(f"{uuid.uuid4().hex}.example:80", account=account) for _ in range(3)]
    try:
        assert all(isinstance(slot, http.Slots) for slot in held)
        destination = f"{uuid.uuid4().hex}.example:80"
        busy = take(destination, account=account, timeout=0.05)
        assert isinstance(busy, http.Busy) and busy.limit == "account"
        held.append(take(destination, account=other))  # another account's request goes out
        assert isinstance(held[-1], http.Slots)
        held.append(take(destination, account=other))  # the refused request gave back the host slot it took
        assert isinstance(held[-1], http.Slots)
        held.pop(0).release(seconds=0.01)
        held.append(take(destination, account=account))  # a slot of its own freed up
        assert isinstance(held[-1], http.Slots)
    finally:
        release_all(held)


def test_the_destination_limit_is_a_setting(settings):
    settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION = 2
    host = f"{uuid.uuid4().hex}.example:80"
    held = [take(host), take(host)]
    try:
        busy = take(host, timeout=0.05)
        assert isinstance(busy, http.Busy) and busy.limit == "destination"
    finally:
        release_all(held)


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_receiver_that_trickles_its_response_is_cut_off_at_the_total_deadline(part, settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    settings.POSTBACK_TOTAL_TIMEOUT = 1
    # One byte every 0.2 s: a timeout per read (10 s before) never fires. It stops after 6 s.
    with TricklingReceiver(part=part, interval=0.2, stop_after=6) as trickling:
        started = time.monotonic()
        exchange = http.send(method="POST", url=trickling.url + "/pb", headers={}, body='{"a": 1}')
        took = time.monotonic() - started
        assert trickling.count() == 1
    assert (exchange.status, exchange.timed_out, exchange.error) == (None, True, "Timed out after 1 s")
    assert 0.9 <= took < 1.5, took
    assert 900 <= exchange.duration_ms < 1500


def test_the_deadline_leaves_a_prompt_answer_alone(receiver, settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    settings.POSTBACK_TOTAL_TIMEOUT = 1
    for _ in range(3):  # the connection is kept or opened again: each request has a deadline of its own
        exchange = http.send(method="GET", url=receiver.url + "/in", headers={}, body="")
        assert (exchange.status, exchange.body, exchange.error) == (200, "ok", "")
    time.sleep(1.2)  # past the deadlines: nothing is cut afterwards
    assert http.send(method="GET", url=receiver.url + "/in", headers={}, body="").status == 200


def test_an_account_with_one_hanging_partner_still_waits_briefly_for_its_fast_ones(settings):
    settings.POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT = 2
    account = uuid.uuid4().hex
    hanging, fast = f"{uuid.uuid4().hex}.example:80", f"{uuid.uuid4().hex}.example:80"
    take(hanging, account=account).release(seconds=10.0)  # the account's average is now 10 s
    held = [take(hanging, account=account), take(fast, account=account)]
    try:
        threading.Timer(0.1, held.pop().release, kwargs={"seconds": 0.01}).start()  # the fast one answers
        started = time.monotonic()
        slot = take(fast, account=account, timeout=1)  # not refused for the hanging partner's pace
        assert isinstance(slot, http.Slots) and 0.05 < time.monotonic() - started < 0.5
        held.append(slot)
    finally:
        release_all(held)


def test_a_request_waits_for_its_destination_slot_no_longer_than_the_deadline(receiver, settings):
    """A test postback (sent from the web process, holding no slot) to a destination whose slots
    the workers' requests all hold: it gives up after the deadline instead of waiting forever."""
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    settings.POSTBACK_TOTAL_TIMEOUT = 1
    settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION = 1
    destination = http.host_of(receiver.url)
    held = take(destination)
    try:
        outcome: list = []
        sender = threading.Thread(
            target=lambda: outcome.append(http.send(method="GET", url=receiver.url + "/in", headers={}, body=""))
        )
        sender.start()
        sender.join(timeout=3)
        assert not sender.is_alive(), "still waiting for a slot"
    finally:
        held.release()
    (exchange,) = outcome
    assert exchange.status is None and exchange.timed_out
    assert exchange.error == f"Not sent: 1 request to {destination} already in flight for 1 s"
    assert not receiver.received
