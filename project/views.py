"""Operational endpoints: /healthz for load balancers and supervisors, /metrics for Prometheus."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from project.health import health_report
from project.metrics import exposition


@require_GET
def healthz(request):
    report = health_report()
    body = {
        "status": "ok" if report.healthy else "unhealthy",
        "checks": report.checks,
        "backlog": report.backlog,
        "oldest_due_seconds": None if report.oldest_due_seconds is None else round(report.oldest_due_seconds, 1),
    }
    return JsonResponse(body, status=200 if report.healthy else 503)


@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("Missing or invalid metrics token.\n", status=401, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
