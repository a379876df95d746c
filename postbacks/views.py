"""Operational endpoints: /healthz for load balancers and supervisors (can this process reach the
database and the broker, and are deliveries flowing?), /metrics for Prometheus."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from prometheus_client import CONTENT_TYPE_LATEST

from postbacks.metrics import BacklogCollector
from postbacks.selectors import backlog
from project.metrics import exposition


@require_GET
def healthz(request):
    checks = {"database": _database_check(), "broker": _broker_check()}
    count = oldest = None
    if checks["database"] != "ok":
        # Always present, so a monitor reading checks.deliveries never finds it missing.
        checks["deliveries"] = "unknown: the database is unreachable"
    else:
        count, oldest = backlog()
        limit = settings.HEALTH_MAX_BACKLOG_AGE
        checks["deliveries"] = (
            "ok" if oldest <= limit else f"stalled: the oldest due delivery waits {oldest:.0f} s (limit {limit} s)"
        )
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "ok" if healthy else "unhealthy",
        "checks": checks,
        "backlog": count,
        "oldest_due_seconds": None if oldest is None else round(oldest, 1),
    }
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("Missing or invalid metrics token.\n", status=401, content_type="text/plain")
    return HttpResponse(exposition(BacklogCollector()), content_type=CONTENT_TYPE_LATEST)


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as error:
        connection.close()  # reconnect on the next request
        return f"unreachable: {type(error).__name__}"


def _broker_check() -> str:
    try:
        return "ok" if get_broker().ping() else "unreachable"
    except Exception as error:
        return f"unreachable: {type(error).__name__}"
