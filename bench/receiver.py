"""A fast local postback receiver for benchmarks: answers 200 (or hangs on /slow), and appends
"<unix time> <path and query>" for every request to a file."""

from __future__ import annotations

import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, log_path: str, slow_seconds: float = 10.0) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the server

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as partners' endpoints do

        def setup(self):
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and
            # delayed ACKs hold each response ~40 ms.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith("/slow"):
                time.sleep(slow_seconds)
            log.write(f"{time.time():.6f} {self.path}\n")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
