"""The postback configurations of each app and the partner catalogue, cached in each process
for a few seconds: every accepted event needs them, and loading them (a four-table join and
its model instances) cost more than storing the event.

A change saved in this process (the admin, an import) is seen at once; other processes see it
within CACHE_SECONDS, as with API keys (events/app_cache.py).
"""

from __future__ import annotations

import time

from events.models import App
from partners.models import Partner, PartnerField, PartnerTemplate
from postbacks.models import PartnerConfiguration, PostbackConfiguration

CACHE_SECONDS = 5.0
MAX_APPS = 10_000
cache_clock = time.monotonic  # tests move it by hand

_by_app: dict[int, tuple[float, tuple[PostbackConfiguration, ...]]] = {}
_partners: list[tuple[float, dict[int, Partner]]] = []


def app_configurations(app: App) -> tuple[PostbackConfiguration, ...]:
    """Every postback configuration of the app (active or not: an inactive one records why it
    did not fire), with its partner, the partner's templates and fields loaded."""
    cached = _by_app.get(app.pk)
    if cached and cached[0] > cache_clock():
        return cached[1]
    configurations = tuple(
        PostbackConfiguration.objects.filter(app=app)
        .select_related("app", "partner_configuration__partner")
        .prefetch_related("partner_configuration__partner__templates", "partner_configuration__partner__fields")
        .order_by("pk")
    )
    if len(_by_app) >= MAX_APPS:
        _by_app.clear()
    _by_app[app.pk] = (cache_clock() + CACHE_SECONDS, configurations)
    return configurations


def partners_by_pk() -> dict[int, Partner]:
    if _partners and _partners[0][0] > cache_clock():
        return _partners[0][1]
    partners = Partner.objects.in_bulk()
    _partners[:] = [(cache_clock() + CACHE_SECONDS, partners)]
    return partners


def forget_all(sender=None, **kwargs) -> None:
    """Signal receiver: configurations change seldom, so any change empties the whole cache."""
    _by_app.clear()
    _partners.clear()


WATCHED_MODELS = (App, PostbackConfiguration, PartnerConfiguration, Partner, PartnerTemplate, PartnerField)
