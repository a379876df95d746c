"""Values kept in one process for a few seconds: what nearly every API request or ingest
needs and seldom changes (an API key's app, an app's postback configurations)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class ExpiringCache:
    """Each value is kept `seconds` after it was loaded; past `max_entries` keys the cache
    starts over. None is never kept (an unknown API key must not be remembered)."""

    def __init__(self, *, seconds: float, max_entries: int = 10_000):
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = time.monotonic  # tests move it by hand
        self._entries: dict[Hashable, tuple[float, object]] = {}

    def get_or_load(self, key: Hashable, load: Callable[[], object]):
        entry = self._entries.get(key)
        if entry and entry[0] > self.clock():
            return entry[1]
        value = load()
        if value is not None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (self.clock() + self.seconds, value)
        return value

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def discard_where(self, condition: Callable[[object], bool]) -> None:
        for key, (_, value) in list(self._entries.items()):
            if condition(value):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
