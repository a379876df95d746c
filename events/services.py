"""Writes on apps (HackSoft style: keyword-only, typed, named <entity>_<action>)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from events.models import App, new_api_key


@transaction.atomic
def app_issue_api_key(*, app: App, key: str | None = None) -> str:
    """Give the app a new API key (random unless one is imported) and return it.

    Only its hash is stored, so the returned key is the one chance to show it; the old key
    stops working at once.
    """
    key = key or new_api_key()
    app.set_api_key(key)
    if app.pk:
        app.api_key_rotated_at = timezone.now()
    app.save()
    return key
