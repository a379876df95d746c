"""All outgoing HTTP of the product: pooled sessions, explicit timeouts, no redirects, a fixed
User-Agent, and a guard that refuses private destinations when the socket is opened.

The guard runs at connect time, on the addresses the name resolves to then, so a destination
that passed validation when it was saved cannot later reach a private address through DNS.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from postbacks.destinations import address_refusal

USER_AGENT = "postback-server/1"
MAX_RESPONSE_BYTES = 8 * 1024
HOST_CONCURRENCY = 8  # in-flight requests per destination host and port, per process


class RefusedDestinationError(NewConnectionError):
    """The destination resolved to an address postbacks may not reach."""


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NewConnectionError(self, f"Cannot resolve {self.host}: {error.strerror}") from error
        allow_private = settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS
        last_error: OSError | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            address = sockaddr[0].split("%")[0]
            reason = None if allow_private else address_refusal(ip_address(address))
            if reason:
                raise RefusedDestinationError(self, f"Refused: {self.host} resolves to {reason}")
            try:
                return urllib3_connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address
                )
            except OSError as error:
                last_error = error
        raise NewConnectionError(self, f"Cannot connect to {self.host}: {last_error}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


_local = threading.local()
PACE_WEIGHT = 0.2
SLOW_REQUEST = 1.0  # seconds
# A host at its in-flight limit none of whose requests ended for this long is not answering
# fast: waiting for its slot would only tie up a sending thread.
QUIET_LIMIT = 0.25  # seconds
pace_clock = time.monotonic  # the clock of the pace rules (tests move it by hand)


class _Host:
    """A destination's in-flight slots and what its requests lately took."""

    def __init__(self) -> None:
        self.slots = threading.BoundedSemaphore(HOST_CONCURRENCY)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.pace = 0.0  # moving average of request seconds (0: not known yet)
        self.heard_from = pace_clock()  # last time a request ended, or began with none in flight

    def taken(self) -> None:
        with self.lock:
            if self.in_flight == 0:
                self.heard_from = pace_clock()  # an idle host has not gone quiet: it had nothing to say
            self.in_flight += 1

    def released(self, seconds: float | None) -> None:
        with self.lock:
            self.in_flight -= 1
            self.heard_from = pace_clock()
            if seconds is not None:
                self.pace = seconds if self.pace == 0.0 else self.pace + PACE_WEIGHT * (seconds - self.pace)
        self.slots.release()

    def slow(self) -> bool:
        return self.pace > SLOW_REQUEST or pace_clock() - self.heard_from > QUIET_LIMIT


_hosts: dict[str, _Host] = {}
_hosts_lock = threading.Lock()


def _adapter() -> _GuardedAdapter:
    """One connection-pooling adapter per thread. Requests go straight to it rather than through
    a Session: no cookie jar carries one partner's cookies into the next postback, no proxy or
    netrc settings come from the environment, and the per-request cost halves."""
    adapter = getattr(_local, "adapter", None)
    if adapter is None:
        adapter = _GuardedAdapter(pool_connections=64, pool_maxsize=HOST_CONCURRENCY, max_retries=0)
        _local.adapter = adapter
    return adapter


def _host(host: str) -> _Host:
    state = _hosts.get(host)
    if state is None:
        with _hosts_lock:
            state = _hosts.setdefault(host, _Host())
    return state


def host_of(url: str) -> str:
    """The destination a slot limit applies to: host and port (two ports are two servers)."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def host_slot_take(host: str, *, timeout: float) -> bool:
    """Take one of the host's in-flight slots. When all are taken, wait (at most `timeout`)
    only for a host that answers fast: a slow host's slots stay taken for seconds, and
    waiting for them would tie up the sending threads that other hosts need."""
    state = _host(host)
    free = state.slots.acquire(blocking=False) or (not state.slow() and state.slots.acquire(timeout=timeout))
    if not free:
        return False
    state.taken()
    return True


def host_slot_release(host: str, *, seconds: float | None = None) -> None:
    """Give the slot back; `seconds` is how long the request took (it teaches the host's pace)."""
    _host(host).released(seconds)


def host_is_slow(host: str) -> bool:
    """Slow: its requests have lately taken over SLOW_REQUEST seconds on average, or it has
    requests in flight and none of them ended for QUIET_LIMIT (a host that began to hang)."""
    return _host(host).slow()


def host_pace(host: str) -> float:
    """How long the host's requests have lately taken, in seconds (0 when not known yet)."""
    return _host(host).pace


@contextmanager
def _host_slot(url: str, *, held: bool):
    if held:  # the caller took it with host_slot_take
        yield
        return
    state = _host(host_of(url))
    state.slots.acquire()
    state.taken()
    try:
        yield
    finally:
        state.released(None)


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

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


def send(*, method: str, url: str, headers: dict[str, str], body: str, slot_held: bool = False) -> Exchange:
    """Send one request; never raises for network trouble, never follows a redirect.
    At most HOST_CONCURRENCY requests per host are in flight in a process: this waits for a
    slot unless the caller holds one already (`slot_held`, see host_slot_take)."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with _host_slot(url, held=slot_held):
            prepared = requests.PreparedRequest()
            prepared.prepare(
                method=method,
                url=url,
                headers={"User-Agent": USER_AGENT, "Accept": "*/*", **headers},
                data=body.encode() if body else None,
            )
            # An adapter never follows redirects: only a Session does.
            response = _adapter().send(
                prepared,
                stream=True,
                timeout=(settings.POSTBACK_CONNECT_TIMEOUT, settings.POSTBACK_READ_TIMEOUT),
                verify=True,
                proxies={},
            )
            try:
                content = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True) or b""
            finally:
                response.close()
    except requests.Timeout as error:
        return Exchange(duration_ms=elapsed(), error=_short(error, "Timed out"), timed_out=True)
    except requests.ConnectionError as error:
        reason = getattr(error.args[0], "reason", None) if error.args else None
        if isinstance(reason, RefusedDestinationError):
            return Exchange(duration_ms=elapsed(), error=_short(reason, "Refused"), refused=True)
        return Exchange(duration_ms=elapsed(), error=_short(error, "Connection failed"))
    except requests.RequestException as error:
        return Exchange(duration_ms=elapsed(), error=_short(error, "Request failed"))
    return Exchange(
        duration_ms=elapsed(),
        status=response.status_code,
        headers=dict(response.headers),
        # A NUL cannot be stored in a PostgreSQL text column; the log shows it as U+FFFD.
        body=content.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
    )


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
