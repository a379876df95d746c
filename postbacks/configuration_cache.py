"""The postback configurations of each app and the partner catalogue, cached in each process
for a few seconds: every accepted event needs them, and loading them (a four-table join and
its model instances) cost more than storing the event.

A change saved in this process (the admin, an import) is seen at once; other processes see it
within CACHE_SECONDS, as with API keys (events/app_cache.py).
"""

from __future__ import annotations

from events.models import App
from partners.models import Partner, PartnerField, PartnerTemplate
from postbacks.models import PartnerConfiguration, PostbackConfiguration
from project.process_cache import ExpiringCache

CACHE_SECONDS = 5.0

_by_app = ExpiringCache(seconds=CACHE_SECONDS)  # app pk -> its configurations
_partners = ExpiringCache(seconds=CACHE_SECONDS)  # one entry: the catalogue by pk


def app_configurations(app: App) -> tuple[PostbackConfiguration, ...]:
    """Every postback configuration of the app (active or not: an inactive one records why it
    did not fire), with its partner, the partner's templates and fields loaded."""
    return _by_app.get_or_load(
        app.pk,
        lambda: tuple(
            PostbackConfiguration.objects.filter(app=app)
            .select_related("app", "partner_configuration__partner")
            .prefetch_related("partner_configuration__partner__templates", "partner_configuration__partner__fields")
            .order_by("pk")
        ),
    )


def partners_by_pk() -> dict[int, Partner]:
    return _partners.get_or_load("all", Partner.objects.in_bulk)


def forget_all(sender=None, **kwargs) -> None:
    """Signal receiver: configurations change seldom, so any change empties the whole cache."""
    _by_app.clear()
    _partners.clear()


WATCHED_MODELS = (App, PostbackConfiguration, PartnerConfiguration, Partner, PartnerTemplate, PartnerField)
