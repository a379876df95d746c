"""The one outgoing HTTP module refuses private destinations when the socket is opened,
whatever form the address takes, and whatever a name resolves to at that moment."""

import pytest

from postbacks import http

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


def test_a_host_whose_requests_stopped_ending_is_refused_at_once(monkeypatch):
    import time
    import uuid

    now = [1000.0]
    monkeypatch.setattr(http, "pace_clock", lambda: now[0])
    host = f"{uuid.uuid4().hex}.example:80"
    held = [http.host_slot_take(host, timeout=1) for _ in range(http.HOST_CONCURRENCY)]
    try:
        now[0] += http.QUIET_LIMIT + 0.01  # none of its requests ended since they started
        started = time.monotonic()
        assert not http.host_slot_take(host, timeout=5)
        assert time.monotonic() - started < 0.1  # no wait: the host has just started to hang
        http.host_slot_release(host, seconds=0.01)  # one answered fast after all
        held.pop()
        assert http.host_slot_take(host, timeout=1)
        held.append(True)
        started = time.monotonic()
        assert not http.host_slot_take(host, timeout=0.2)  # answering again: worth a wait
        assert time.monotonic() - started >= 0.2
    finally:
        for _ in held:
            http.host_slot_release(host)


def test_a_host_that_was_idle_is_not_taken_for_a_quiet_one(monkeypatch):
    import time
    import uuid

    now = [1000.0]
    monkeypatch.setattr(http, "pace_clock", lambda: now[0])
    host = f"{uuid.uuid4().hex}.example:80"
    assert http.host_slot_take(host, timeout=1)
    http.host_slot_release(host, seconds=0.01)
    now[0] += 60  # nothing to send for a minute, then a burst
    held = [http.host_slot_take(host, timeout=1) for _ in range(http.HOST_CONCURRENCY)]
    try:
        started = time.monotonic()
        assert not http.host_slot_take(host, timeout=0.2)  # its requests just started: worth a wait
        assert time.monotonic() - started >= 0.2
    finally:
        for _ in held:
            http.host_slot_release(host)


def test_a_fast_host_is_waited_for_and_a_slow_one_refused_at_once():
    import time
    import uuid

    host = f"{uuid.uuid4().hex}.example:80"
    held = [http.host_slot_take(host, timeout=1) for _ in range(http.HOST_CONCURRENCY)]
    assert all(held)
    try:
        started = time.monotonic()
        assert not http.host_slot_take(host, timeout=0.2)  # its requests just started: worth a wait
        assert time.monotonic() - started >= 0.2
        http.host_slot_release(host, seconds=5.0)  # a request took 5 s: the host is slow
        held.pop()
        assert http.host_slot_take(host, timeout=1)  # a free slot is still taken
        held.append(True)
        started = time.monotonic()
        assert not http.host_slot_take(host, timeout=5)  # no free slot: refused at once, no thread tied up
        assert time.monotonic() - started < 0.1
    finally:
        for _ in held:
            http.host_slot_release(host)
