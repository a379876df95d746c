"""Access: the admin needs a login and a CSRF token, and neither API keys nor partner secrets
reach a log line."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from events.services import app_issue_api_key
from postbacks.sending import deliveries_claim, deliveries_send
from project.logs import JsonFormatter
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/postbacks/delivery/", "/admin/postbacks/postbackconfiguration/add/", "/admin/events/app/"],
)
def test_the_admin_needs_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_post_without_csrf_token_is_refused(manager, app):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(reverse("admin:events_app_change", args=[app.pk]), {"name": "Renamed"})
    assert response.status_code == 403
    app.refresh_from_db()
    assert app.name != "Renamed"


def test_api_keys_and_partner_secrets_never_reach_a_log_line(client, app, partner, receiver, allow_private, caplog):
    partner.templates.filter(event="install").update(url_template=receiver.url + "/p/{fields.app_id}")
    config = factories.make_partner_configuration(app, partner, app_id="4242", token="s3cr3t-token")
    factories.make_certified_postback(config, delivery_method="all")
    key = app_issue_api_key(app=app)
    body = {"event_id": "e-1", "event": "install", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}}
    with caplog.at_level(logging.DEBUG):
        accepted = client.post(
            "/api/v1/events", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        refused = client.post(
            "/api/v1/events", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}x"
        )
        assert deliveries_send(claim=deliveries_claim(limit=10)) == {"delivered": 1}
    assert accepted.status_code == 202 and refused.status_code == 401
    assert receiver.wait_for(1)[0].query["t"] == ["s3cr3t-token"]  # it was really sent
    lines = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "postback attempt" in lines
    assert key not in lines and "s3cr3t-token" not in lines
