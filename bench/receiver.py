"""A fast local postback receiver for benchmarks: answers 200 (or hangs on /slow), and appends
"<unix time> <path and query>" for every request to a file.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) on asyncio, so that the
receiver costs the shared CPU as little as possible and the figures measure the sender.
"""

from __future__ import annotations

import asyncio
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Receiver(asyncio.Protocol):
    def __init__(self, log, slow_seconds: float):
        self.log = log
        self.slow_seconds = slow_seconds
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(" ", 2)[1]
            if path.startswith("/slow"):
                asyncio.get_running_loop().call_later(self.slow_seconds, self._answer, path)
            else:
                self._answer(path)

    def _answer(self, path: str) -> None:
        self.log.write(f"{time.time():.6f} {path}\n")
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def serve(port: int, log_path: str, slow_seconds: float = 10.0) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the server
    server = await asyncio.get_running_loop().create_server(
        lambda: _Receiver(log, slow_seconds), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
