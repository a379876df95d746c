"""A real HTTP server on 127.0.0.1 that records postbacks and answers as a test tells it to."""

from __future__ import annotations

import contextlib
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str
    at: float
    peer_port: int = 0  # the sender's port: which process sent it (tests.product.pid_holding_connection)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # bursts from many sending threads must not find the backlog full
    daemon_threads = True


class Receiver:
    def __init__(self, port: int = 0, reply_for=None):
        self.received: list[Received] = []
        self.replies: list[Reply] = []  # consumed in order; when empty, `default` answers
        self.default = Reply()
        self.reply_for = reply_for  # optional: Received -> Reply, instead of replies/default
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            method=self.command,
                            path=parts.path,
                            query=parse_qs(parts.query, keep_blank_values=True),
                            headers={key.lower(): value for key, value in self.headers.items()},
                            body=body,
                            at=time.monotonic(),
                            peer_port=self.client_address[1],
                        )
                    )
                    if receiver.reply_for:
                        reply = receiver.reply_for(receiver.received[-1])
                    else:
                        reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        return list(self.received)


class TricklingReceiver:
    """A hostile receiver on 127.0.0.1: it reads the request, then sends its response one byte
    every `interval` seconds, the status line and headers (`part="headers"`) or, after whole
    headers, the body (`part="body"`). It stops by itself: each connection is closed after
    `stop_after` seconds, finished or not, and every one at once when the receiver stops."""

    BODY = b"ok" * 50

    def __init__(self, *, part: str = "headers", interval: float = 2.0, stop_after: float = 30.0):
        assert part in ("headers", "body")
        self.arrived: list[float] = []  # time.monotonic() of each request read
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                connection = self.request
                connection.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = connection.recv(4096)
                        if not chunk:
                            return
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    while len(body) < length:
                        body += connection.recv(4096)
                except OSError:
                    return
                with receiver._lock:
                    receiver.arrived.append(time.monotonic())
                headers = (
                    f"HTTP/1.1 200 OK\r\nContent-Length: {len(receiver.BODY)}\r\nConnection: close\r\n\r\n"
                ).encode()
                if part == "body":
                    trickled = receiver.BODY
                    with contextlib.suppress(OSError):
                        connection.sendall(headers)
                else:
                    trickled = headers + receiver.BODY
                until = time.monotonic() + stop_after
                for byte in trickled:
                    if time.monotonic() >= until or receiver._stopping.is_set():
                        return  # closed unfinished
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        return  # the client gave up
                    receiver._stopping.wait(interval)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> TricklingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.arrived)
