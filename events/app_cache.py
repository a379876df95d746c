"""What every API request needs to know about its app, cached in each process for a few seconds.

Saves two or three queries a request. Changes made in this process (the admin, imports)
are seen at once; other processes see them within CACHE_SECONDS, so a rotated or
deactivated key stops working everywhere within that time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from events.models import App, CustomEvent, Tracker, hash_api_key

CACHE_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class AppProfile:
    event_names: tuple[str, ...]
    has_reengagement_trackers: bool


_apps: dict[str, tuple[float, App]] = {}
_profiles: dict[int, tuple[float, AppProfile]] = {}


def app_for_key(key: str) -> App | None:
    """The active app this API key belongs to, or None (unknown keys are never cached)."""
    key_hash = hash_api_key(key)
    cached = _apps.get(key_hash)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    app = App.objects.filter(api_key_hash=key_hash, is_active=True).select_related("account").first()
    if app is not None:
        if len(_apps) >= MAX_ENTRIES:
            _apps.clear()
        _apps[key_hash] = (time.monotonic() + CACHE_SECONDS, app)
    return app


def app_profile(app: App) -> AppProfile:
    cached = _profiles.get(app.pk)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    profile = AppProfile(
        event_names=tuple(app.event_names()),
        has_reengagement_trackers=Tracker.objects.filter(app=app, kind=Tracker.Kind.REENGAGEMENT).exists(),
    )
    if len(_profiles) >= MAX_ENTRIES:
        _profiles.clear()
    _profiles[app.pk] = (time.monotonic() + CACHE_SECONDS, profile)
    return profile


def forget_app(*, app_id: int) -> None:
    _profiles.pop(app_id, None)
    for key_hash, (_, app) in list(_apps.items()):
        if app.pk == app_id:
            _apps.pop(key_hash, None)


def forget_on_change(sender, instance, **kwargs) -> None:
    """Signal receiver: drop what this process cached about the changed row's app."""
    app_id = instance.pk if isinstance(instance, App) else instance.app_id
    if app_id is not None:
        forget_app(app_id=app_id)


WATCHED_MODELS = (App, CustomEvent, Tracker)
