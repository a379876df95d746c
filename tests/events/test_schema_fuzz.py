"""The OpenAPI schema tells the truth: schemathesis (its `st` command), run against the schema
a live server serves at /api/schema/, finds nothing on any endpoint (events, batches,
erasures): no 500, and every reply's status, content type, headers and body are ones the
schema describes.

All of its default checks run but one, positive_data_acceptance ("a body the schema allows
is accepted"): the schema cannot say which custom events an app has declared, that a
timestamp lies within EVENT_MAX_AGE_DAYS, or that revenue needs a currency, so a body it
allows may rightly be refused with a 400 (which it documents).

The run is bounded and repeatable: a fixed seed, a fixed number of examples per operation, a
fresh directory (no example database carried over), one worker. The per-key rate limit is
off for it, and the erasures' too (its thousands of requests would meet them at a moment no
test chooses); the 429 reply is held to the schema by its own test below.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import schemathesis

from events.services import app_issue_api_key

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed rows

SCHEMA_PATH = "/api/schema/?format=json"
EXAMPLES_PER_OPERATION = 60
SEED = 20261130
ST = Path(sys.executable).with_name("st")  # installed beside this Python (requirements.txt)


@pytest.fixture
def app_key(app):
    app.custom_events.get_or_create(name="purchase")
    return app_issue_api_key(app=app)


def test_schemathesis_finds_nothing_against_the_served_schema(
    live_server, app_key, settings, fresh_rate_limit, tmp_path
):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.ERASURE_RATE_LIMIT_PER_MINUTE = 0
    command = [
        str(ST),
        "run",
        f"{live_server.url}{SCHEMA_PATH}",
        "--header",
        f"Authorization: Bearer {app_key}",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "10",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "4 selected / 4 total" in run.stdout  # every operation was tested


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/events", {"event_id": "e-{n}", "event": "install", "device": {"device_id": "d-{n}"}}),
        ("/api/v1/events/batch", {"events": [{"event_id": "e-{n}", "event": "install", "device": {"device_id": "d"}}]}),
        ("/api/v1/erasures", {"device": {"device_id": "d-{n}"}}),
    ],
)
def test_a_429_is_a_reply_the_schema_describes(live_server, app_key, settings, fresh_rate_limit, path, body):
    document = requests.get(f"{live_server.url}{SCHEMA_PATH}", timeout=10).json()
    documented = document["paths"][path]["post"]["responses"].get("429", {})
    assert "Retry-After" in documented.get("headers", {}) and "application/json" in documented.get("content", {})
    operation = schemathesis.openapi.from_dict(document)[path]["POST"]
    settings.API_RATE_LIMIT_PER_MINUTE = settings.ERASURE_RATE_LIMIT_PER_MINUTE = 1
    replies = [
        requests.post(
            f"{live_server.url}{path}",
            data=json.dumps(body).replace("{n}", str(number)),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {app_key}"},
            timeout=10,
        )
        for number in range(2)
    ]
    assert [reply.status_code for reply in replies] == [200 if path.endswith("batch") else 202, 429]
    for reply in replies:
        operation.validate_response(reply)  # raises when status, headers or body are not as documented
