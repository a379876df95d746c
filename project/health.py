"""Health: can this process reach the database and the broker, and are deliveries flowing?"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection


@dataclass
class HealthReport:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what is wrong
    backlog: int | None = None
    oldest_due_seconds: float | None = None

    @property
    def healthy(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


def health_report() -> HealthReport:
    report = HealthReport()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report.checks["database"] = "ok"
    except Exception as error:
        report.checks["database"] = f"unreachable: {type(error).__name__}"
        connection.close()  # reconnect on the next request
    report.checks["broker"] = _broker_check()
    if report.checks["database"] != "ok":
        # Always present, so a monitor reading checks.deliveries never finds it missing.
        report.checks["deliveries"] = "unknown: the database is unreachable"
        return report
    from postbacks.selectors import backlog

    report.backlog, report.oldest_due_seconds = backlog()
    limit = settings.HEALTH_MAX_BACKLOG_AGE
    report.checks["deliveries"] = (
        "ok"
        if report.oldest_due_seconds <= limit
        else f"stalled: the oldest due delivery waits {report.oldest_due_seconds:.0f} s (limit {limit} s)"
    )
    return report


def _broker_check() -> str:
    from django_q.brokers import get_broker

    try:
        return "ok" if get_broker().ping() else "unreachable"
    except Exception as error:
        return f"unreachable: {type(error).__name__}"
