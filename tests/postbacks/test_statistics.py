"""The statistics and the admin dashboard: honest counts (retrying deliveries included),
failures grouped by cause, real names, read from per-minute rollups kept as attempts are
recorded, not from the deliveries table."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from events.services import EventInput
from postbacks.ingest import events_ingest
from postbacks.models import Delivery, DeliveryMinute, response_bucket_fields
from postbacks.rollups import failure_cause
from postbacks.sending import deliveries_claim, deliveries_send
from postbacks.statistics import histogram_percentile
from project import clock
from tests import factories
from tests.product import free_port
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 3, 10, 0, 20, tzinfo=UTC)
REPLIES = {"/ok": Reply(status=200), "/down": Reply(status=503), "/gone": Reply(status=404)}


@pytest.fixture
def paths_receiver():
    with Receiver(reply_for=lambda received: REPLIES[received.path]) as running:
        yield running


def send_all():
    return deliveries_send(claim=deliveries_claim(limit=100))


def ingest(app, count: int, *, prefix: str = "e", name: str = "install"):
    for number in range(count):
        data = EventInput(
            event_id=f"{prefix}{number}", name=name, device_ids={"device_id": f"{prefix}d{number}"}, occurred_at=T0
        )
        events_ingest(app=app, items=[data])


@pytest.fixture
def traffic(app, other_app, paths_receiver, allow_private):
    """In the user's account: 3 delivered, 2 given up on a 404, 2 retrying on a 503 and 11
    retrying on a refused connection (nothing listens on the port); in another account: 5 delivered."""
    closed = f"http://127.0.0.1:{free_port()}/nobody"
    made = {
        "ok": factories.make_custom_postback(app, url=paths_receiver.url + "/ok", title="Warehouse", event="install"),
        "gone": factories.make_custom_postback(
            app, url=paths_receiver.url + "/gone", event="install", retry_attempts=0
        ),
        "down": factories.make_custom_postback(app, url=paths_receiver.url + "/down", event="purchase"),
        "closed": factories.make_custom_postback(app, url=closed, event="purchase", title="Dead host"),
        "other": factories.make_custom_postback(other_app, url=paths_receiver.url + "/ok", title="Rival warehouse"),
    }
    with clock.frozen(T0):
        ingest(app, 3)  # installs: to "ok" and "gone"
        ingest(app, 2, prefix="p", name="purchase")  # purchases: to "down" and "closed"
        ingest(other_app, 5, prefix="o")
        # The 404 configuration gets two of its three deliveries sent now; the third waits.
        last = Delivery.objects.filter(configuration=made["gone"]).order_by("pk").last()
        Delivery.objects.filter(pk=last.pk).update(due_at=T0 + timedelta(days=1))
        send_all()
    # Nine more to the dead host (the 503 configuration's wait), so that 11 deliveries retry
    # on connection errors, as in the report; its batch adds to the same minute's rollup.
    with clock.frozen(T0):
        ingest(app, 9, prefix="q", name="purchase")
        Delivery.objects.filter(configuration=made["down"], attempts=0).update(due_at=T0 + timedelta(days=1))
        send_all()
    return made


def stats_page(client, **query):
    with clock.frozen(T0 + timedelta(minutes=5)):
        return client.get(reverse("admin:postbacks_delivery_stats"), query)


def test_failure_causes_come_from_one_classifier():
    cause = failure_cause
    assert cause(outcome="delivered", status=200, error="") == ""
    assert (
        cause(outcome="retry", status=None, error="Connection failed: Cannot resolve x.test: Name or service not known")
        == "dns"
    )
    assert (
        cause(outcome="retry", status=None, error="Connection failed: Cannot connect to 127.0.0.1: refused")
        == "connect"
    )
    assert cause(outcome="retry", status=None, error="Timed out after 10 s") == "timeout"
    assert (
        cause(outcome="retry", status=None, error="Not sent: 8 requests to h already in flight for 10 s") == "timeout"
    )
    assert cause(outcome="failed", status=None, error="Refused: h resolves to 10.0.0.1 (private)") == "refused"
    assert cause(outcome="failed", status=302, error="HTTP 302: redirect to ? not followed") == "redirect"
    assert cause(outcome="failed", status=404, error="HTTP 404") == "http_4xx"
    assert cause(outcome="retry", status=503, error="HTTP 503") == "http_5xx"
    assert cause(outcome="failed", status=200, error="HTTP 200, the reply says success = false") == "partner_error"


def test_percentiles_from_the_buckets():
    buckets = [0] * len(response_bucket_fields())
    assert histogram_percentile(buckets, 0.95) is None
    buckets[0] = 90  # 90 attempts under 50 ms
    buckets[5] = 10  # 10 between 500 and 750 ms
    assert histogram_percentile(buckets, 0.5) == 28
    assert histogram_percentile(buckets, 0.95) == 625
    buckets[-1] = 100  # slower than the last bound: answered as that bound
    assert histogram_percentile(buckets, 0.95) == 10000


def test_rollups_are_written_with_the_attempts_and_add_up(traffic):
    rows = DeliveryMinute.objects.filter(configuration=traffic["closed"])
    [row] = rows  # one minute, one outcome, one cause: two batches added into one row
    assert (row.outcome, row.cause, row.attempts) == ("retry", "connect", 11)
    assert row.minute == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    assert sum(getattr(row, name) for name in response_bucket_fields()) == 11
    ok = DeliveryMinute.objects.get(configuration=traffic["ok"])
    assert (ok.outcome, ok.cause, ok.attempts) == ("delivered", "", 3)
    assert ok.due_under_1s == 3  # due to delivered: under a second (the clock stood still)
    assert row.due_under_1s == 0  # only delivered attempts are counted there
    assert DeliveryMinute.objects.get(configuration=traffic["gone"]).cause == "http_4xx"
    assert DeliveryMinute.objects.get(configuration=traffic["down"]).cause == "http_5xx"


def test_statistics_count_retrying_deliveries_and_group_failures_by_cause(client, support, traffic):
    client.force_login(support)
    stats = stats_page(client).context["stats"]
    # Never "100 % success, no failures" while deliveries are retrying.
    assert stats.by_status == {"delivered": 3, "failed": 2, "retrying": 13}
    assert stats.success_rate == round(100 * 3 / (3 + 2 + 13), 1)
    assert stats.total.retried == 13
    assert stats.delay_p50_s == 0 and stats.delay_p95_s == 1  # delivered within the second it was due
    assert [(cause, failed, retried) for cause, _, failed, retried in stats.failures_by_cause] == [
        ("connect", 0, 11),
        ("http_4xx", 2, 0),
        ("http_5xx", 0, 2),
    ]
    names = {row.name for row in stats.per_configuration}
    # Untitled configurations show their event and where they go, not "(untitled)".
    assert names == {"Warehouse", "Dead host", "install → 127.0.0.1 (Rocket)", "purchase → 127.0.0.1 (Rocket)"}
    page = stats_page(client).content.decode()
    assert "Connection failed" in page and "HTTP 4xx" in page and "(untitled)" not in page
    assert "Rival" not in page


def test_statistics_of_one_configuration(client, support, traffic):
    client.force_login(support)
    stats = stats_page(client, configuration=traffic["closed"].pk).context["stats"]
    assert stats.by_status == {"retrying": 11}
    assert stats.success_rate == 0.0
    points = [point for point in stats.series if point["retried"]]
    assert [point["retried"] for point in points] == [11]


def test_statistics_read_rollups_not_the_deliveries_table(client, support, traffic):
    """Attempts are never read; deliveries only through what an index narrows: the unfinished
    ones (a partial index) and the skipped ones of the window, of the user's configurations
    (configuration, status, created_at)."""
    client.force_login(support)
    with CaptureQueriesContext(connection) as queries:
        stats_page(client)
    touched = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in touched if '"postbacks_attempt"' in sql]
    on_deliveries = [sql for sql in touched if 'FROM "postbacks_delivery"' in sql]
    assert on_deliveries and all(
        '"postbacks_delivery"."status"' in sql and '"postbacks_delivery"."configuration_id" IN' in sql
        for sql in on_deliveries
    )


def test_the_dashboard_shows_the_users_accounts_only(client, support, traffic):
    client.force_login(support)
    with clock.frozen(T0 + timedelta(minutes=5)):
        page = client.get(reverse("admin:index"))
    html = page.content.decode()
    assert 'id="dashboard"' in html
    assert 'data-chart="chart-outcomes-data"' in html and "chart-4.6.1.umd.min.js" in html
    assert 'id="chart-outcomes-data"' in html and 'id="chart-response-times-data"' in html
    assert "Rival warehouse" not in html
    # Configurations failing now: the dead host and the 503s, with their cause.
    failing = html[html.index('id="failing-now"') : html.index('id="per-partner"')]
    assert "Dead host" in failing and "Connection failed" in failing
    assert "purchase → 127.0.0.1 (Rocket)" in failing and "Warehouse" not in failing
    for link in (
        reverse("admin:postbacks_delivery_stats"),
        reverse("admin:postbacks_delivery_changelist") + "?status__exact=failed",
        reverse("api-docs"),
        reverse("admin:postbacks_docs"),
    ):
        assert f'href="{link}"' in html


def test_a_superuser_sees_every_account(client, django_user_model, traffic):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-1234"))
    with clock.frozen(T0 + timedelta(minutes=5)):
        html = client.get(reverse("admin:index")).content.decode()
        stats = client.get(reverse("admin:postbacks_delivery_stats")).context["stats"]
    assert stats.total.delivered == 8  # 3 of the user's account, 5 of the other
    assert "<strong>8</strong>delivered" in html


def test_the_docs_link_serves_the_projects_documentation(client, support):
    client.force_login(support)
    index = client.get(reverse("admin:postbacks_docs")).content.decode()
    assert "README.md" in index and "delivery.md" in index
    page = client.get(reverse("admin:postbacks_docs_page", args=["performance.md"])).content.decode()
    assert "Dashboard and statistics" in page
    assert client.get(reverse("admin:postbacks_docs_page", args=["settings.py"])).status_code == 404


def test_no_dashboard_for_staff_who_may_not_see_deliveries(client, traffic):
    client.force_login(factories.make_staff("visitor"))
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard"' not in html and "Warehouse" not in html


def test_purge_keeps_the_rollups_of_the_longest_statistics_window(traffic):
    from django.core.management import call_command

    total = DeliveryMinute.objects.count()
    with clock.frozen(T0 + timedelta(days=29)):
        call_command("purge_deliveries", "--older-than", "1")
    assert DeliveryMinute.objects.count() == total
    with clock.frozen(T0 + timedelta(days=31)):
        call_command("purge_deliveries", "--older-than", "1")
    assert DeliveryMinute.objects.count() == 0
