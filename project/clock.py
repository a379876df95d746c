"""The one source of "now" for time rules (event age, delays, 24-hour periods).

Tests move it with `clock.frozen(at)` instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.utils import timezone

_frozen_at: datetime | None = None


def now() -> datetime:
    return _frozen_at if _frozen_at is not None else timezone.now()


@contextmanager
def frozen(at: datetime) -> Iterator[FrozenClock]:
    global _frozen_at
    previous = _frozen_at
    _frozen_at = at
    try:
        yield FrozenClock()
    finally:
        _frozen_at = previous


class FrozenClock:
    def advance(self, delta: timedelta) -> datetime:
        global _frozen_at
        assert _frozen_at is not None
        _frozen_at = _frozen_at + delta
        return _frozen_at

    @property
    def now(self) -> datetime:
        return now()
