"""A demo database's last 24 hours of deliveries, for the screenshots in docs/screenshots/
(tests/browser/screenshots.py runs it in the product's shell): made-up attempts of the demo's
configurations, recorded into the rollups by the send path's own function, and real
deliveries retrying on a refused connection."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal

from django.conf import settings

from events.models import App
from events.services import EventInput
from postbacks.ingest import events_ingest
from postbacks.models import Attempt, Delivery, PostbackConfiguration
from postbacks.rollups import rollups_record
from postbacks.sending import deliveries_claim, deliveries_send
from project import clock

# partner slug (or "custom") -> typical response time in ms
SPEED = {"meta": 180, "tiktok": 260, "moburst": 420, "google_ads": 150, "amplitude": 90, "custom": 60}


def history_fill(*, closed_port: int, seed: int = 17) -> None:
    rng = random.Random(seed)
    now = clock.now()
    configurations = list(
        PostbackConfiguration.objects.filter(status="active").select_related("partner_configuration__partner")
    )
    for hour in range(24, -1, -1):
        attempts = []
        for minute in range(0, 60, 2):
            at = now - timedelta(hours=hour, minutes=minute)
            if at > now:
                continue
            load = 1.0 + 0.8 * math.sin((at.hour - 9) / 24 * 2 * math.pi)  # busier in the day
            for configuration in configurations:
                attempts += _minute_of(configuration, at=at, load=load, hours_ago=hour, minute_ago=minute, rng=rng)
        rollups_record(attempts=attempts)
    _retrying_now(closed_port=closed_port)


def _minute_of(configuration, *, at, load: float, hours_ago: int, minute_ago: int, rng: random.Random) -> list[Attempt]:
    label = configuration.partner_label
    typical = SPEED.get(label, 200)
    made = []
    for _ in range(rng.randint(0, max(1, round(4 * load)))):
        outcome, status, error = Attempt.Outcome.DELIVERED, 200, ""
        roll = rng.random()
        if label == "custom" and 9 <= hours_ago <= 11 and roll < 0.6:  # the warehouse's bad morning
            outcome, status, error = Attempt.Outcome.RETRY, 503, "HTTP 503"
        elif label == "google_ads" and hours_ago == 0 and minute_ago < 12:  # failing now
            outcome, status, error = Attempt.Outcome.RETRY, None, "Connection failed: Cannot resolve x: not known"
        elif label == "tiktok" and roll < 0.04:
            outcome, status, error = Attempt.Outcome.FAILED, 400, "HTTP 400: the receiver refused it"
        elif label == "amplitude" and roll < 0.03:
            outcome, status, error = Attempt.Outcome.FAILED, 200, "HTTP 200, the reply says code = 400"
        elif roll < 0.01:
            outcome, status, error = Attempt.Outcome.RETRY, None, "Timed out after 10 s"
        duration = int(rng.lognormvariate(math.log(typical), 0.5))
        if error.startswith("Timed out"):
            duration = 10000
        elif status is None:
            duration = rng.randint(1, 5)  # a name not found fails at once
        # Due when created (its delay past), delivered after a wait of seconds, or minutes when
        # it took retries.
        waited = timedelta(seconds=rng.lognormvariate(0, 1) + (600 if rng.random() < 0.01 else 0))
        created = at - waited - timedelta(seconds=configuration.delay_seconds)
        delivery = Delivery(app_id=configuration.app_id, configuration=configuration, created_at=created)
        made.append(
            Attempt(
                delivery=delivery,
                started_at=at,
                duration_ms=duration,
                response_status=status,
                error=error,
                outcome=outcome,
            )
        )
    return made


def _retrying_now(*, closed_port: int) -> None:
    """Purchases of the Android demo app sent to a port where nothing listens: retrying."""
    settings.POSTBACK_CAPTURE_URL = f"http://127.0.0.1:{closed_port}"
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True
    app = App.objects.get(name="Space Rocks Android")
    for number in range(6):
        data = EventInput(
            event_id=f"shot-{number}",
            name="purchase",
            device_ids={"adid": f"38400000-8cf0-11bd-b23e-10b96e4{number:05d}"},
            occurred_at=clock.now(),
            revenue=Decimal("4.99"),
            currency="USD",
        )
        events_ingest(app=app, items=[data])
    deliveries_send(claim=deliveries_claim(limit=100))
