"""A receiver for POSTBACK_CAPTURE_URL on this machine: `make run` starts it (through
`runall --capture-receiver`) so the demo's postbacks are delivered here, not to a partner.

It answers every request 200 and prints one line about it: method, the URL the postback would
have gone to (X-Postback-Original-Url) and the body's size. Query strings are not printed:
a partner's token may be in one; the delivery log shows the request, secrets masked.
"""

from __future__ import annotations

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from postbacks.http import CAPTURE_HEADER

MAX_BODY_BYTES = 1024 * 1024  # a postback is small; a bigger body is read no further


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    server_version = "postback-capture/1"
    timeout = 10  # seconds a connection may stay silent: a stuck client does not hold a thread

    def _capture(self) -> None:
        try:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        original = urlsplit(self.headers.get(CAPTURE_HEADER, ""))
        would_go = f"{original.scheme}://{original.netloc}{original.path}" if original.netloc else "(no original URL)"
        test = " (test postback)" if self.headers.get("X-Postback-Test") else ""
        sys.stdout.write(f"captured {self.command} {would_go}{test}, {len(body)} bytes of body\n")
        sys.stdout.flush()
        payload = b'{"captured": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _capture

    def log_message(self, format, *args):  # one line per request is printed by _capture
        pass


class Command(BaseCommand):
    help = "Answer 200 to every postback sent to POSTBACK_CAPTURE_URL on this machine, printing one line for each."

    def add_arguments(self, parser):
        parser.add_argument("port", type=int)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, port: int, host: str, **options):
        try:
            server = _Server((host, port), _Handler)
        except OSError as error:
            raise CommandError(f"The capture receiver cannot listen on {host}:{port}: {error.strerror}") from error
        # SIGTERM (runall stopping its children) ends serve_forever from another thread.
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        self.stdout.write(f"Capture receiver on http://{host}:{port}: postbacks end here, none reaches a partner.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
