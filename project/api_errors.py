"""API error replies: DRF's, plus 503 (not 500) when the database cannot be reached."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s: %s", exc.__class__.__name__, exc)
        return Response(
            {"detail": "The service cannot reach its database; nothing was stored. Retry later."},
            status=503,
            headers={"Retry-After": "5"},
        )
    return exception_handler(exc, context)
