"""API authentication by app key, and the per-key rate limit."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

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


def app_of_request(request) -> App:
    """The app whose key the request carries; 401 for a missing, unknown or inactive key
    (alike: no hint whether an app exists)."""
    app = app_for_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
    if app is None:
        raise exceptions.AuthenticationFailed(INVALID_KEY)
    return app


def app_rate_limit(app: App, *, events: int = 1, scope: str = "app", limit: int | None = None) -> None:
    """Count a request's events (one, or a batch's) against the app key's limit per minute in
    `scope` (API_RATE_LIMIT_PER_MINUTE unless another `limit` is given; 0: no limit); 429 when
    the request is not admitted, whole."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE if limit is None else limit
    if limit:
        admitted, retry_after = rate_limit_admits(key=f"{scope}:{app.pk}", limit=limit, cost=events)
        if not admitted:
            raise exceptions.Throttled(wait=retry_after)


class AppKeyAuthentication(authentication.BaseAuthentication):
    """The app key as DRF sees it: in the schema, and in a 401's WWW-Authenticate."""

    keyword = BEARER

    def authenticate(self, request):
        app = app_of_request(request)
        return AppPrincipal(app), app

    def authenticate_header(self, request):
        return self.keyword


class AppKeyScheme(OpenApiAuthenticationExtension):
    """Describes the key in the OpenAPI schema."""

    target_class = "events.api_auth.AppKeyAuthentication"
    name = "appKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The app's API key."}
