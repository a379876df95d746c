"""API authentication by app key, and a per-key rate limit."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from events.app_cache import app_for_key
from events.models import App

INVALID_KEY = "Missing or invalid API key."
BEARER = "Bearer"


logger = logging.getLogger(__name__)


class AppPrincipal:
    """Stands in for a user: the caller is an app, identified by its key alone."""

    is_authenticated = True
    is_active = True

    def __init__(self, app: App):
        self.app = app


def app_for_authorization(header: str) -> App | None:
    """The active app whose key an Authorization header carries ("Bearer <key>"), or None."""
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme != BEARER or not key or len(key) > 200:
        return None
    return app_for_key(key)


def rate_limit_admits(*, app: App) -> tuple[bool, int]:
    """Whether one more request fits in the app key's one-minute window (counting it), and
    the seconds until the next window. A fixed window: one cache increment a request."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if not limit:
        return True, 0
    window = int(time.time() // 60)
    try:
        count = _count(f"api-rate:{app.pk}:{window}")
    except Exception:
        # The cache (Redis) is away: keep accepting events rather than refuse them all.
        logger.warning("rate limit not checked: the cache is unreachable", exc_info=True)
        return True, 0
    return count <= limit, 60 - int(time.time() % 60)


def _count(key: str) -> int:
    if cache.add(key, 1, timeout=120):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        return 1


class AppKeyAuthentication(authentication.BaseAuthentication):
    keyword = BEARER

    def authenticate(self, request):
        app = app_for_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
        if app is None:  # unknown and inactive keys answer alike: no hint whether an app exists
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        return AppPrincipal(app), app

    def authenticate_header(self, request):
        return self.keyword


class PerAppKeyRateThrottle(throttling.BaseThrottle):
    def allow_request(self, request, view):
        if request.auth is None:
            return True
        allowed, self.retry_after = rate_limit_admits(app=request.auth)
        return allowed

    def wait(self):
        return getattr(self, "retry_after", 60)


class AppKeyScheme(OpenApiAuthenticationExtension):
    """Describes the key in the OpenAPI schema."""

    target_class = "events.api_auth.AppKeyAuthentication"
    name = "appKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The app's API key."}
