"""All outgoing HTTP of the product: pooled sessions, a total deadline per request, no
redirects, a fixed User-Agent, a guard that refuses private destinations when the socket is
opened, and the in-flight limits per destination and per account.

The guard runs at connect time, on the addresses the name resolves to then, so a destination
that passed validation when it was saved cannot later reach a private address through DNS.

The deadline (POSTBACK_TOTAL_TIMEOUT) runs from the first connect to the last byte of the
response: a socket timeout only bounds each read, and a receiver sending a byte every
2 s kept one attempt going for over a minute. One watchdog thread per process shuts down
the sockets of a request that passes its deadline, whatever it is waiting for then (TLS
handshake, headers, body, or sending the body to a receiver that does not read).
"""

from __future__ import annotations

import heapq
import itertools
import os
import re
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import connection as urllib3_connection

from postbacks.destinations import address_refusal

USER_AGENT = "postback-server/1"
CAPTURE_HEADER = "X-Postback-Original-Url"
MAX_RESPONSE_BYTES = 8 * 1024
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


class RefusedDestinationError(NewConnectionError):
    """The destination resolved to an address postbacks may not reach."""


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NewConnectionError(self, f"Cannot resolve {self.host}: {error.strerror}") from error
        allow_private = settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS
        deadline: _Deadline | None = getattr(_local, "deadline", None)
        last_error: OSError | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            address = sockaddr[0].split("%")[0]
            reason = None if allow_private else address_refusal(ip_address(address))
            if reason:
                raise RefusedDestinationError(self, f"Refused: {self.host} resolves to {reason}")
            timeout = self.timeout
            if deadline is not None:
                # Connecting counts against the deadline too (name resolution cannot be cut
                # short; a deadline it used up ends the attempt as soon as it returns).
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out")
                timeout = min(timeout, remaining) if isinstance(timeout, int | float) else remaining
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), timeout, source_address=self.source_address
                )
            except OSError as error:
                last_error = error
                continue
            if deadline is not None:
                deadline.watch(sock)
            return sock
        raise NewConnectionError(self, f"Cannot connect to {self.host}: {last_error}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _DeadlinePoolMixin:
    def _make_request(self, conn, *args, **kwargs):
        deadline: _Deadline | None = getattr(_local, "deadline", None)
        if deadline is not None and conn.sock is not None:  # a kept-alive connection: watch it too
            deadline.watch(conn.sock)
        return super()._make_request(conn, *args, **kwargs)


class _GuardedHTTPPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


_local = threading.local()
PACE_WEIGHT = 0.2
SLOW_REQUEST = 1.0  # seconds
# A limit all of whose requests are in flight and none of which ended for this long is not
# answering fast: waiting for its slot would only tie up a sending thread.
QUIET_LIMIT = 0.25  # seconds
pace_clock = time.monotonic  # the clock of the pace rules (tests move it by hand)


# --- the total deadline ---------------------------------------------------------------------


class _Deadline:
    """One request's deadline. At `at` the watchdog shuts down every socket the request has
    opened or used, so whatever it waits for ends at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline. A duplicate of its descriptor is kept: it names the
        same connection after TLS has wrapped (and detached) the original, and while we hold
        it no other connection can be given its number."""
        try:
            copy = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        with self._lock:
            if not self.finished:
                self._sockets.append(copy)
                if self.expired:
                    _shut(copy)
                return
        copy.close()

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for copy in self._sockets:
                _shut(copy)

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            sockets, self._sockets = self._sockets, []
        for copy in sockets:
            copy.close()


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed by the other end
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread per process that expires the deadlines that have passed, soonest first."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="postback-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._due, (deadline.at, next(self._order), deadline))
            if self._due[0][2] is deadline:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    while self._due and self._due[0][2].finished:
                        heapq.heappop(self._due)
                    if not self._due:
                        self._condition.wait()
                        continue
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._condition.wait(wait)
                _at, _order, deadline = heapq.heappop(self._due)
            deadline.expire()


_watchdog = _Watchdog()


def _watchdog_after_fork() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # threads do not survive a fork (django-q2's workers): start afresh


os.register_at_fork(after_in_child=_watchdog_after_fork)


# --- in-flight limits -----------------------------------------------------------------------


class _Limit:
    """The in-flight slots of one destination or one account, and what its requests lately took."""

    def __init__(self, capacity: int, *, judged_by_pace: bool) -> None:
        self.capacity = capacity
        self.judged_by_pace = judged_by_pace
        self.slots = threading.BoundedSemaphore(capacity)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.pace = 0.0  # moving average of request seconds (0: not known yet)
        self.heard_from = pace_clock()  # last time a request ended, or began with none in flight

    def take(self, *, timeout: float, even_if_slow: bool = False) -> bool:
        """Take a slot. When all are taken, wait (at most `timeout`) only if the requests
        holding them answer fast: a slow one's slots stay taken for seconds, and waiting for
        them would tie up the sending threads that other destinations and accounts need
        (`even_if_slow`: a caller with no other work, such as a test postback, waits anyway)."""
        free = self.slots.acquire(blocking=False) or (
            timeout > 0 and (even_if_slow or not self.slow()) and self.slots.acquire(timeout=timeout)
        )
        if free:
            with self.lock:
                if self.in_flight == 0:
                    self.heard_from = pace_clock()  # an idle limit has not gone quiet: it had nothing to say
                self.in_flight += 1
        return free

    def release(self, seconds: float | None) -> None:
        with self.lock:
            self.in_flight -= 1
            self.heard_from = pace_clock()
            if seconds is not None:
                self.pace = seconds if self.pace == 0.0 else self.pace + PACE_WEIGHT * (seconds - self.pace)
        self.slots.release()

    def slow(self) -> bool:
        """Slow: it has requests in flight and none of them ended for QUIET_LIMIT (it began to
        hang), or, for a destination, its requests have lately taken over SLOW_REQUEST seconds
        on average. An account's average mixes its partners: one hanging partner beside a fast
        one would make it look slow while its fast requests free a slot every few milliseconds."""
        quiet = self.in_flight > 0 and pace_clock() - self.heard_from > QUIET_LIMIT
        return quiet or (self.judged_by_pace and self.pace > SLOW_REQUEST)


_limits: dict[tuple[str, str, int], _Limit] = {}
_limits_lock = threading.Lock()


def _limit(kind: str, key: str) -> _Limit:
    capacity = (
        settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION
        if kind == "destination"
        else settings.POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT
    )
    name = (kind, key, capacity)
    limit = _limits.get(name)
    if limit is None:
        with _limits_lock:
            limit = _limits.setdefault(name, _Limit(capacity, judged_by_pace=kind == "destination"))
    return limit


def host_of(url: str) -> str:
    """The destination a slot limit applies to: host and port (two ports are two servers)."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@dataclass(frozen=True)
class Busy:
    """No request could start: `limit` ("destination" or "account") had no free slot."""

    limit: str
    slow: bool  # its requests are slow (see _Limit.slow): its slots will not free up soon
    pace: float  # how long its requests have lately taken, in seconds (0: not known yet)


class Slots:
    """The in-flight slots a request holds (its account's, its destination's) until release()."""

    def __init__(self, held: list[_Limit]) -> None:
        self._held = held

    def release(self, *, seconds: float | None = None) -> None:
        """Give them back; `seconds` is how long the request took (it teaches their pace)."""
        for limit in self._held:
            limit.release(seconds)
        self._held = []


def slots_take(*, destination: str, account: str | None, timeout: float, even_if_slow: bool = False) -> Slots | Busy:
    """Take a slot of the account (POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT) and of the destination
    host:port (POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION), in this process, waiting at most
    `timeout` in all, and only for limits whose requests answer fast (see _Limit.take). So one
    account's slow partners hold at most its share of the sending threads, and one partner at most its own."""
    wanted = [("account", account)] if account is not None else []
    wanted.append(("destination", destination))
    until = time.monotonic() + timeout
    held: list[_Limit] = []
    for kind, key in wanted:
        limit = _limit(kind, key)
        if not limit.take(timeout=max(0.0, until - time.monotonic()), even_if_slow=even_if_slow):
            Slots(held).release()
            return Busy(limit=kind, slow=limit.slow(), pace=limit.pace)
        held.append(limit)
    return Slots(held)


def _adapter() -> _GuardedAdapter:
    """One connection-pooling adapter per thread. Requests go straight to it rather than through
    a Session: no cookie jar carries one partner's cookies into the next postback, no proxy or
    netrc settings come from the environment, and each request costs less."""
    adapter = getattr(_local, "adapter", None)
    if adapter is None:
        adapter = _GuardedAdapter(
            pool_connections=64, pool_maxsize=settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION, max_retries=0
        )
        _local.adapter = adapter
    return adapter


@dataclass
class Exchange:
    """What happened on the wire: a response, or the error that stopped it."""

    duration_ms: int
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""
    refused: bool = False  # destination refused by the guard: retrying cannot help
    timed_out: bool = False
    captured_to: str = ""  # the URL it went to instead of its own (POSTBACK_CAPTURE_URL), or ""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


def capture_url(url: str) -> str:
    """Where a request for `url` goes instead when POSTBACK_CAPTURE_URL is set (its scheme,
    host and port, with `url`'s path and query), or "" when it is not."""
    capture = settings.POSTBACK_CAPTURE_URL
    if not capture:
        return ""
    parts = urlsplit(url)
    return capture + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def send(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: str,
    account: str | None = None,
    slot_wait: float | None = None,
) -> Exchange | Busy:
    """Send one request; never raises for network trouble, never follows a redirect, never
    takes longer than POSTBACK_TOTAL_TIMEOUT from connecting to the last byte of the response
    (nor POSTBACK_CONNECT_TIMEOUT to connect).

    While in flight it holds a slot of its destination (`url`'s host:port) and, given one, of
    its `account` (slots_take). A worker's request waits at most `slot_wait` for them, and only
    for limits that answer fast: Busy when a slot stays taken, so the delivery can go back to
    the schedule. Without `slot_wait` (a test postback, sent by a caller with nothing else to
    do) it waits up to POSTBACK_TOTAL_TIMEOUT, and then gives up with an Exchange saying so.

    With POSTBACK_CAPTURE_URL set, the request goes there instead (see capture_url), with
    CAPTURE_HEADER naming `url`; the guard against private addresses applies to the capture
    host as to any. Slots stay those of `url`'s host: the partner's."""
    total = settings.POSTBACK_TOTAL_TIMEOUT
    destination = host_of(url)
    asked = time.monotonic()
    slots = slots_take(
        destination=destination,
        account=account,
        timeout=total if slot_wait is None else slot_wait,
        even_if_slow=slot_wait is None,
    )
    if isinstance(slots, Busy):
        if slot_wait is not None:
            return slots
        capacity = settings.POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION
        plural = "request" if capacity == 1 else "requests"
        error = f"Not sent: {capacity} {plural} to {destination} already in flight for {total:g} s"
        waited = int((time.monotonic() - asked) * 1000)
        return Exchange(duration_ms=waited, error=error, timed_out=True, captured_to=capture_url(url))
    exchange = None
    try:
        exchange = _exchange(method=method, url=url, headers=headers, body=body)
    finally:
        slots.release(seconds=exchange.duration_ms / 1000 if exchange else None)
    return exchange


def _exchange(*, method: str, url: str, headers: dict[str, str], body: str) -> Exchange:
    started = time.monotonic()
    captured_to = capture_url(url)
    target = captured_to or url
    if captured_to:
        # A header value is Latin-1 on the wire: anything else in the URL goes percent-encoded.
        headers = {**headers, CAPTURE_HEADER: quote(url, safe=_URL_SAFE)}

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    total = settings.POSTBACK_TOTAL_TIMEOUT
    timed_out = f"Timed out after {total:g} s"
    deadline = None
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=method,
            url=target,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*", **headers},
            data=body.encode() if body else None,
        )
        deadline = _local.deadline = _Deadline(total)
        _watchdog.add(deadline)
        try:
            # An adapter never follows redirects: only a Session does. The read timeout
            # bounds each wait for data; the deadline bounds them all together.
            response = _adapter().send(
                prepared,
                stream=True,
                timeout=(min(settings.POSTBACK_CONNECT_TIMEOUT, total), total),
                verify=True,
                proxies={},
            )
            try:
                content = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True) or b""
            finally:
                response.close()
        finally:
            _local.deadline = None
            deadline.finish()
        if deadline.expired:  # the response may look whole: the watchdog cut it short
            return Exchange(duration_ms=elapsed(), error=timed_out, timed_out=True, captured_to=captured_to)
    except (requests.RequestException, Urllib3Error, OSError) as error:
        if deadline is not None and deadline.expired:
            return Exchange(duration_ms=elapsed(), error=timed_out, timed_out=True, captured_to=captured_to)
        return replace(_failed(error, duration_ms=elapsed()), captured_to=captured_to)
    return Exchange(
        duration_ms=elapsed(),
        captured_to=captured_to,
        status=response.status_code,
        headers=dict(response.headers),
        # A NUL cannot be stored in a PostgreSQL text column; the log shows it as U+FFFD.
        body=content.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
    )


def _failed(error: BaseException, *, duration_ms: int) -> Exchange:
    if isinstance(error, requests.Timeout | Urllib3TimeoutError | TimeoutError):
        return Exchange(duration_ms=duration_ms, error=_short(error, "Timed out"), timed_out=True)
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, RefusedDestinationError):
        return Exchange(duration_ms=duration_ms, error=_short(reason, "Refused"), refused=True)
    if isinstance(error, requests.ConnectionError):
        return Exchange(duration_ms=duration_ms, error=_short(error, "Connection failed"))
    return Exchange(duration_ms=duration_ms, error=_short(error, "Request failed"))


def _short(error: BaseException, prefix: str) -> str:
    """A readable one-line error, without urllib3's object reprs."""
    text = str(error)
    for marker in ("Refused:", "Failed to establish a new connection:", "Cannot resolve", "Cannot connect"):
        if marker in text:
            text = text[text.index(marker) :]
            break
    text = text.split("'))")[0].rstrip("')\"")
    # urllib3 names the path and query it gave up on; a query may carry a partner's token.
    text = re.sub(r"with url: \S+", "with url: (see the request)", text)
    message = text if text.startswith(prefix) else f"{prefix}: {text}"
    return message[:500]
