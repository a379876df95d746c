"""Access: the admin needs a login and a CSRF token, repeated failed logins are locked out, and
neither API keys nor partner secrets reach a log line."""

import json
import logging

import pytest
from django.db.models import F
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


def log_in(client, username: str, password: str, address: str, **headers):
    """The admin's login form, as a browser posts it, from `address`."""
    return client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_failed_logins_lock_the_username_even_for_the_right_password_for_the_lock_out_period(
    client, manager, support, settings
):
    settings.AXES_FAILURE_LIMIT = limit = 5
    answers = [log_in(client, "manager", f"guess-{n}", "198.51.100.1").status_code for n in range(limit)]
    assert answers == [200] * (limit - 1) + [429]
    refused = log_in(client, "manager", "pw-manager", "198.51.100.1")
    assert refused.status_code == 429 and "Too many failed logins" in refused.content.decode()
    assert not logged_in(client)
    assert log_in(client, "manager", "pw-manager", "198.51.100.2").status_code == 429  # from anywhere
    assert not logged_in(client)
    # Another user from another address is not locked.
    assert log_in(client, "support", "pw-support", "198.51.100.3").status_code == 302
    assert logged_in(client)
    client.logout()

    from axes.models import AccessAttempt  # the throttle's own record of failures

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME)  # the period passes
    assert log_in(client, "manager", "pw-manager", "198.51.100.1").status_code == 302
    assert logged_in(client)


def test_failed_logins_from_one_address_lock_that_address_for_every_username(client, support, settings):
    settings.AXES_FAILURE_LIMIT = 5
    for n in range(5):
        log_in(client, f"nobody-{n}", "guess", "198.51.100.9")
    assert log_in(client, "support", "pw-support", "198.51.100.9").status_code == 429
    assert not logged_in(client)
    assert log_in(client, "support", "pw-support", "198.51.100.8").status_code == 302


def test_behind_a_reverse_proxy_the_client_address_comes_from_its_header(client, support, settings):
    settings.TRUSTED_PROXIES = 1
    settings.AXES_FAILURE_LIMIT = 5
    proxy = "10.0.0.2"
    for n in range(5):
        # The client may send its own X-Forwarded-For; the proxy appends the address it saw.
        log_in(client, f"nobody-{n}", "guess", proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.5")
    locked = log_in(client, "support", "pw-support", proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert locked.status_code == 429
    other_client = log_in(client, "support", "pw-support", proxy, HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert other_client.status_code == 302  # the proxy's own address is not locked
