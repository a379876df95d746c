"""Loaded inside `manage.py shell` by bench/delivery.py: apps with one custom postback each,
and a backlog of events ingested through the real ingest service."""

from __future__ import annotations

import json
from pathlib import Path

from events.models import Account, App, CustomEvent
from events.services import EventInput, app_issue_api_key
from postbacks.models import PostbackConfiguration
from project import clock
from project.ingest import events_ingest


def load(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    account, _ = Account.objects.get_or_create(name="Bench")
    for app_spec in spec["apps"]:
        app = App.objects.filter(account=account, name=app_spec["name"]).first()
        if app is None:
            app = App(account=account, name=app_spec["name"], platform="android")
            app.package_name = "com.bench." + app_spec["name"].lower()
            app_issue_api_key(app=app)
            CustomEvent.objects.create(app=app, name="purchase")
            PostbackConfiguration.objects.create(
                app=app,
                event="purchase",
                kind="custom",
                destination_url=app_spec["url"],
                macros=["event_id"],
                retry_attempts=3,
            )
        items = [
            EventInput(
                event_id=f"{app_spec['name']}-{spec['round']}-{number}",
                name="purchase",
                device_ids={"device_id": f"d{number % 5000}"},
                occurred_at=clock.now(),
            )
            for number in range(app_spec["events"])
        ]
        for start in range(0, len(items), 1000):
            events_ingest(app=app, items=items[start : start + 1000])
