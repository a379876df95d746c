"""The admin's dashboard (its index page) and the charts it shares with the statistics page:
every figure from postbacks/statistics.py, confined to the accounts the user may see."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from events.scoping import visible_to
from postbacks.models import PostbackConfiguration
from postbacks.statistics import STEPS, WINDOWS, DeliveryStats, Row, configurations_failing_now, delivery_stats
from project import clock

DASHBOARD_WINDOW = "24h"
LABEL_FORMATS = {"minute": "%H:%M", "hour": "%m-%d %H:00", "day": "%Y-%m-%d"}


@dataclass
class Dashboard:
    stats: DeliveryStats
    failing_now: list[Row]
    charts: dict[str, dict]


def dashboard_figures(*, user) -> Dashboard | None:
    """The last 24 hours for `user`'s accounts (all for a superuser), or None for a user who
    may not see deliveries."""
    if not user.has_perm("postbacks.view_delivery"):
        return None
    configurations = visible_to(PostbackConfiguration.objects.all(), user)
    step = STEPS[DASHBOARD_WINDOW]
    stats = delivery_stats(configurations=configurations, since=clock.now() - WINDOWS[DASHBOARD_WINDOW], step=step)
    return Dashboard(
        stats=stats,
        failing_now=configurations_failing_now(configurations=configurations),
        charts=chart_specs(stats),
    )


def chart_specs(stats: DeliveryStats) -> dict[str, dict]:
    """What charts.js draws: attempts per step by outcome (stacked bars) and the response
    time percentiles per step (lines). Times are UTC."""
    label_format = LABEL_FORMATS[stats.step]
    labels = [point["at"].strftime(label_format) for point in stats.series]
    x_title = f"{stats.step} (UTC)"

    def dataset(key: str, label: str) -> dict:
        return {"key": key, "label": label, "data": [point[key] for point in stats.series]}

    return {
        "outcomes": {
            "kind": "bar",
            "title": "Attempts by outcome",
            "labels": labels,
            "x_title": x_title,
            "y_title": "attempts",
            "datasets": [
                dataset("delivered", "delivered"),
                dataset("failed", "failed (gave up)"),
                dataset("retried", "failed, retrying"),
            ],
        },
        "response_times": {
            "kind": "line",
            "title": "Partner response time",
            "labels": labels,
            "x_title": x_title,
            "y_title": "milliseconds",
            "datasets": [
                {**dataset("p50_ms", "p50"), "key": "p50"},
                {**dataset("p95_ms", "p95"), "key": "p95"},
            ],
        },
    }


def docs_pages() -> dict[str, Path]:
    """The documentation the dashboard links to: README.md and docs/*.md, by file name."""
    pages = {"README.md": settings.BASE_DIR / "README.md"}
    pages.update({path.name: path for path in sorted((settings.BASE_DIR / "docs").glob("*.md"))})
    return {name: path for name, path in pages.items() if path.is_file()}
