"""API authentication by app key, and a per-key rate limit."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from events.app_cache import app_for_key
from events.models import App
from events.rate_limit import rate_limit_admits

INVALID_KEY = "Missing or invalid API key."
BEARER = "Bearer"


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


def app_within_rate_limit(app: App, *, events: int = 1) -> tuple[bool, int]:
    """Count a request's events (one, or a batch's) against the app key's
    API_RATE_LIMIT_PER_MINUTE (0: no limit): whether the request is admitted, whole, and the
    seconds until the next window."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    return rate_limit_admits(key=f"app:{app.pk}", limit=limit, cost=events) if limit else (True, 0)


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
    """DRF's side of the per-key rate limit (events/rate_limit.py). A view may count a
    request as several events (rate_limit_events(request))."""

    def allow_request(self, request, view):
        if request.auth is None:
            return True
        events = view.rate_limit_events(request) if hasattr(view, "rate_limit_events") else 1
        allowed, self.retry_after = app_within_rate_limit(request.auth, events=events)
        return allowed

    def wait(self):
        return getattr(self, "retry_after", 60)


class AppKeyScheme(OpenApiAuthenticationExtension):
    """Describes the key in the OpenAPI schema."""

    target_class = "events.api_auth.AppKeyAuthentication"
    name = "appKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The app's API key."}
