"""What every API request needs to know about its app, cached in each process for a few seconds.

Saves two or three queries a request. Changes made in this process (the admin, imports)
are seen at once; other processes see them within CACHE_SECONDS, so a rotated or
deactivated key stops working everywhere within that time.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.models import App, CustomEvent, Tracker, hash_api_key
from project.process_cache import ExpiringCache

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class AppProfile:
    event_names: tuple[str, ...]
    has_reengagement_trackers: bool


_apps = ExpiringCache(seconds=CACHE_SECONDS)  # API key hash -> App
_profiles = ExpiringCache(seconds=CACHE_SECONDS)  # app pk -> AppProfile


def app_for_key(key: str) -> App | None:
    """The active app this API key belongs to, or None (unknown keys are never cached)."""
    key_hash = hash_api_key(key)
    return _apps.get_or_load(
        key_hash,
        lambda: App.objects.filter(api_key_hash=key_hash, is_active=True).select_related("account").first(),
    )


def app_profile(app: App) -> AppProfile:
    return _profiles.get_or_load(
        app.pk,
        lambda: AppProfile(
            event_names=tuple(app.event_names()),
            has_reengagement_trackers=Tracker.objects.filter(app=app, kind=Tracker.Kind.REENGAGEMENT).exists(),
        ),
    )


def forget_app(*, app_id: int) -> None:
    _profiles.discard(app_id)
    _apps.discard_where(lambda app: app.pk == app_id)


def forget_on_change(sender, instance, **kwargs) -> None:
    """Signal receiver: drop what this process cached about the changed row's app."""
    app_id = instance.pk if isinstance(instance, App) else instance.app_id
    if app_id is not None:
        forget_app(app_id=app_id)


WATCHED_MODELS = (App, CustomEvent, Tracker)
