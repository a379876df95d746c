"""Loaded inside `manage.py shell` by bench/delivery.py: apps with one custom postback each,
and a backlog of events ingested through the real ingest service."""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path

from events.models import Account, App, CustomEvent
from events.services import EventInput, app_issue_api_key
from postbacks.ingest import events_ingest
from postbacks.models import PostbackConfiguration
from project import clock


def load(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    account, _ = Account.objects.get_or_create(name="Bench")
    batches = []
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
        batches.append([(app, items[start : start + 100]) for start in range(0, len(items), 100)])
    # Interleave the apps' events, so slow and fast deliveries are due side by side.
    for round_of_batches in zip_longest(*batches):
        for app_and_items in round_of_batches:
            if app_and_items:
                events_ingest(app=app_and_items[0], items=app_and_items[1])
