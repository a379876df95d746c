"""The one way the admin writes a moment: ISO 8601 in UTC, e.g. 2026-11-23T08:00:00Z.

Templates get it through settings.FORMAT_MODULE_PATH (project/formats/); code that builds
text itself calls iso_utc."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
