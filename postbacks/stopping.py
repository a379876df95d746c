"""Long-running commands (dispatcher, watchdog, runall) stop cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal


class StopRequest:
    """Set by SIGTERM or SIGINT; a command's loop checks it between rounds."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested
