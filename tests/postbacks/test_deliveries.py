"""Which postbacks an event produces, and why one did not fire."""

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import IntegrityError, connection, transaction

from events.models import Event
from events.services import EventInput, click_record
from partners.models import Partner
from postbacks.ingest import events_ingest
from postbacks.models import Delivery, PostbackConfiguration, SessionPeriodClaim
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"


@pytest.fixture
def setup(app):
    net_a = factories.make_partner("net_a")
    net_b = factories.make_partner("net_b")
    agency = factories.make_partner("agency_x", kind=Partner.Kind.AGENCY)
    return {
        "net_a": net_a,
        "net_b": net_b,
        "agency": agency,
        "a_direct": factories.make_tracker(app, net_a, campaign_name="A direct"),
        "a_via_agency": factories.make_tracker(app, net_a, agency=agency, campaign_name="A via agency"),
        "b": factories.make_tracker(app, net_b, campaign_name="B"),
        "a_re": factories.make_tracker(app, net_a, kind="reengagement", campaign_name="A comeback"),
        "config_a": factories.make_partner_configuration(app, net_a),
        "config_agency": factories.make_partner_configuration(app, agency),
    }


def send(app, name, at, adid=ADID, event_id=None):
    data = EventInput(
        event_id=event_id or f"{name}-{at.isoformat()}-{adid}", name=name, device_ids={"adid": adid}, occurred_at=at
    )
    with clock.frozen(at + timedelta(seconds=1)):
        return events_ingest(app=app, items=[data])[0].event


def install_via(app, tracker, adid=ADID, at=T0):
    if tracker is not None:
        click_record(
            tracker=tracker,
            clicked_at=at - timedelta(hours=1),
            device_ids={"adid": adid},
            click_id="clk-77",
            ip=None,
            user_agent="",
            parameters={},
        )
    return send(app, "install", at, adid=adid)


def outcome(event: Event, configuration: PostbackConfiguration) -> Delivery:
    return Delivery.objects.get(event=event, configuration=configuration)


@pytest.mark.parametrize(
    ("method", "tracker", "sent", "reason"),
    [
        ("all", None, True, ""),
        ("all", "b", True, ""),
        ("network_only", "a_direct", True, ""),
        ("network_only", "a_via_agency", False, "Network Only excludes agency traffic"),
        ("network_only", "b", False, "attributed to Net B, not Net A"),
        ("network_only", None, False, "unattributed (organic)"),
        ("network_and_agency", "a_direct", True, ""),
        ("network_and_agency", "a_via_agency", True, ""),
        ("network_and_agency", "b", False, "attributed to Net B, not Net A"),
    ],
)
def test_delivery_method_of_a_network(app, setup, method, tracker, sent, reason):
    configuration = factories.make_certified_postback(setup["config_a"], delivery_method=method)
    event = install_via(app, setup[tracker] if tracker else None)
    delivery = outcome(event, configuration)
    assert (delivery.status == "scheduled") is sent
    assert reason in delivery.skip_reason
    assert event.postbacks_scheduled == int(sent)


def test_all_sends_attribution_only_for_the_partners_own_installs(app, setup):
    configuration = factories.make_certified_postback(setup["config_a"], delivery_method="all")
    own = outcome(install_via(app, setup["a_direct"]), configuration)
    other = outcome(install_via(app, setup["b"], adid="11111111-1111-1111-1111-111111111111"), configuration)
    assert parse_qs(urlsplit(own.url).query)["camp"] == ["A direct"]
    assert "camp" not in parse_qs(urlsplit(other.url).query, keep_blank_values=True)  # left out, not sent empty


def test_an_agency_receives_only_its_own_trackers_installs(app, setup):
    configuration = factories.make_certified_postback(setup["config_agency"], delivery_method="network_only")
    mine = outcome(install_via(app, setup["a_via_agency"]), configuration)
    theirs = outcome(install_via(app, setup["a_direct"], adid="22222222-2222-2222-2222-222222222222"), configuration)
    assert mine.status == "scheduled"
    assert theirs.status == "skipped" and "without Agency X's trackers" in theirs.skip_reason


def test_network_only_follows_a_reengagement_through_its_tracker(app, setup):
    configuration = factories.make_certified_postback(
        setup["config_a"], event="purchase", delivery_method="network_only"
    )
    install_via(app, setup["b"])
    before = send(app, "purchase", T0 + timedelta(days=1))
    assert outcome(before, configuration).status == "skipped"
    click_record(
        tracker=setup["a_re"],
        clicked_at=T0 + timedelta(days=2),
        device_ids={"adid": ADID},
        click_id="re-1",
        ip=None,
        user_agent="",
        parameters={},
    )
    after = send(app, "purchase", T0 + timedelta(days=2, hours=1))
    delivery = outcome(after, configuration)
    assert delivery.status == "scheduled"
    assert '"click":"re-1"' in delivery.body


def test_custom_postbacks_share_attribution_only_with_supply_network_data(app, setup):
    hidden = factories.make_custom_postback(app, url="https://a.test/in", macros=["network_name", "attributed"])
    shown = factories.make_custom_postback(
        app, url="https://b.test/in", macros=["network_name", "attributed"], supply_network_data=True
    )
    event = install_via(app, setup["a_direct"])
    assert parse_qs(urlsplit(outcome(event, hidden).url).query, keep_blank_values=True) == {
        "network_name": [""],
        "attributed": [""],
    }
    assert parse_qs(urlsplit(outcome(event, shown).url).query) == {"network_name": ["Net A"], "attributed": ["1"]}


def test_inactive_configurations_and_event_matching(app, setup):
    inactive = factories.make_custom_postback(app, status="inactive")
    matched = factories.make_custom_postback(app, event="level_complete", match_event="install")
    event = install_via(app, None)
    assert outcome(event, inactive).skip_reason == "The postback configuration is inactive."
    assert outcome(event, matched).status == "scheduled"
    purchase = send(app, "purchase", T0 + timedelta(hours=1))
    assert not Delivery.objects.filter(event=purchase).exists()


@pytest.mark.parametrize("delay", [0, 30, 60, 120, 300, 600])
def test_each_delay_sets_the_due_time_from_acceptance(app, delay):
    configuration = factories.make_custom_postback(app, delay_seconds=delay)
    event = install_via(app, None)
    delivery = outcome(event, configuration)
    assert delivery.due_at == event.received_at + timedelta(seconds=delay)
    assert event.received_at == T0 + timedelta(seconds=1)


def test_values_are_encoded_and_the_request_is_stored(app, setup):
    configuration = factories.make_custom_postback(app, url="https://hooks.test/{campaign_name}", macros=["adid"])
    configuration.supply_network_data = True
    configuration.save()
    tracker = factories.make_tracker(app, setup["net_a"], campaign_name="A&B=c#d")
    delivery = outcome(install_via(app, tracker), configuration)
    assert delivery.url == f"https://hooks.test/A%26B%3Dc%23d?adid={ADID}"
    assert delivery.method == "GET" and delivery.max_attempts == 4


class TestSessionBegin:
    @pytest.fixture
    def configuration(self, app, setup):
        return factories.make_custom_postback(app, event="session_begin", url="https://sessions.test/in")

    def test_nothing_in_the_first_24_hours_then_one_per_period(self, app, configuration):
        install_via(app, None)
        early = send(app, "session_begin", T0 + timedelta(hours=23, minutes=59))
        assert "Inside the first 24 hours after the install" in outcome(early, configuration).skip_reason
        first = send(app, "session_begin", T0 + timedelta(hours=24))
        assert outcome(first, configuration).status == "scheduled"
        assert outcome(first, configuration).session_period == 1
        again = send(app, "session_begin", T0 + timedelta(hours=47, minutes=59))
        assert "Already sent for this device in the 24-hour period" in outcome(again, configuration).skip_reason
        next_day = send(app, "session_begin", T0 + timedelta(hours=48))
        assert outcome(next_day, configuration).session_period == 2

    def test_a_reengagement_moves_the_anchor(self, app, setup, configuration):
        install_via(app, setup["a_direct"])
        click_record(
            tracker=setup["a_re"],
            clicked_at=T0 + timedelta(days=3),
            device_ids={"adid": ADID},
            click_id="",
            ip=None,
            user_agent="",
            parameters={},
        )
        send(app, "purchase", T0 + timedelta(days=3, hours=1))  # reengages: anchor = this moment
        inside = send(app, "session_begin", T0 + timedelta(days=3, hours=5))
        assert "after the reengagement" in outcome(inside, configuration).skip_reason
        after = send(app, "session_begin", T0 + timedelta(days=4, hours=1))
        assert outcome(after, configuration).session_period == 1

    def test_network_only_sends_only_its_devices_and_all_includes_unattributed(self, app, setup):
        postbacks = {}
        for slug, method in (("net_c", "network_only"), ("net_d", "all")):
            partner = factories.make_partner(slug)
            partner.templates.create(event="session_begin", url_template=f"https://{slug}.test/s", body={})
            postbacks[method] = factories.make_certified_postback(
                factories.make_partner_configuration(app, partner), event="session_begin", delivery_method=method
            )
        install_via(app, None)  # organic
        session = send(app, "session_begin", T0 + timedelta(days=1, hours=1))
        assert outcome(session, postbacks["network_only"]).status == "skipped"
        assert outcome(session, postbacks["all"]).status == "scheduled"

    def test_no_install_recorded(self, app, configuration):
        session = send(app, "session_begin", T0)
        assert "No install recorded" in outcome(session, configuration).skip_reason

    def test_the_database_refuses_a_second_claim_of_one_period(self, app, configuration):
        install_via(app, None)
        first = send(app, "session_begin", T0 + timedelta(hours=25))
        delivery = outcome(first, configuration)
        claim = SessionPeriodClaim.objects.get(device=delivery.device, configuration=configuration)
        assert claim.period == delivery.session_period == 1
        with pytest.raises(IntegrityError), transaction.atomic():
            SessionPeriodClaim.objects.create(
                device=delivery.device, configuration=configuration, period=1, claimed_at=T0 + timedelta(hours=26)
            )


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="two writers at once need PostgreSQL")
def test_two_session_begins_of_one_period_at_once_send_one_postback(app):
    """The second request reads the period as free (the first has not committed), then waits
    on the first's claim; once it commits, the second is refused, runs again and skips."""
    configuration = factories.make_custom_postback(app, event="session_begin", url="https://sessions.test/in")
    install_via(app, None)
    first_planned, commit = threading.Event(), threading.Event()
    errors = []

    def session(event_id: str, *, hold: bool) -> None:
        try:
            item = EventInput(event_id, "session_begin", {"adid": ADID}, occurred_at=T0 + timedelta(hours=25))
            with transaction.atomic():
                events_ingest(app=app, items=[item])
                if hold:
                    first_planned.set()
                    assert commit.wait(10)
        except Exception as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    def waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            return cursor.fetchone()[0] > 0

    with clock.frozen(T0 + timedelta(hours=26)):
        first = threading.Thread(target=session, args=("s1",), kwargs={"hold": True})
        first.start()
        assert first_planned.wait(10)
        second = threading.Thread(target=session, args=("s2",), kwargs={"hold": False})
        second.start()
        deadline = time.monotonic() + 10
        while not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_on_a_lock()
        commit.set()
        first.join(10), second.join(10)
    assert not errors
    by_event = {
        d.event.event_id: d for d in Delivery.objects.filter(configuration=configuration).select_related("event")
    }
    assert by_event["s1"].status == Delivery.Status.SCHEDULED
    assert by_event["s2"].status == Delivery.Status.SKIPPED
    assert "Already sent for this device" in by_event["s2"].skip_reason
    assert SessionPeriodClaim.objects.filter(configuration=configuration).count() == 1


def test_a_configuration_changed_here_applies_to_the_next_event_at_once(app, setup):
    config = factories.make_custom_postback(app, url="https://example.com/pb")
    assert send(app, "install", T0, adid=ADID).postbacks_scheduled == 1
    config.status = PostbackConfiguration.Status.INACTIVE
    config.save()
    second = send(app, "install", T0 + timedelta(days=1), adid="11111111-2222-3333-4444-555555555555")
    assert second.postbacks_scheduled == 0
    assert Delivery.objects.get(event=second).status == Delivery.Status.SKIPPED


def test_a_change_made_by_another_process_applies_within_the_cache_lifetime(app, setup, monkeypatch):
    from postbacks import configuration_cache

    now = [1000.0]
    monkeypatch.setattr(configuration_cache._by_app, "clock", lambda: now[0])
    config = factories.make_custom_postback(app, url="https://example.com/pb")
    assert send(app, "install", T0).postbacks_scheduled == 1
    # Another process (the admin's web worker) pauses it: no signal reaches this one.
    PostbackConfiguration.objects.filter(pk=config.pk).update(status=PostbackConfiguration.Status.INACTIVE)
    other = "11111111-2222-3333-4444-555555555555"
    assert send(app, "install", T0, adid=other).postbacks_scheduled == 1  # still cached
    now[0] += configuration_cache.CACHE_SECONDS
    third = "22222222-2222-3333-4444-555555555555"
    assert send(app, "install", T0, adid=third).postbacks_scheduled == 0


def test_a_batch_with_postbacks_takes_no_queries_per_event(app):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from postbacks.ingest import events_ingest

    factories.make_custom_postback(app, event="install")
    factories.make_custom_postback(app, event="purchase")

    def batch(prefix: str, size: int) -> tuple[list, int]:
        items = []
        for number in range(size):  # an install and a purchase of each new device
            ids = {"device_id": f"{prefix}-{number}"}
            items.append(EventInput(event_id=f"{prefix}-i{number}", name="install", device_ids=ids, occurred_at=T0))
            items.append(EventInput(event_id=f"{prefix}-p{number}", name="purchase", device_ids=ids, occurred_at=T0))
        with CaptureQueriesContext(connection) as queries:
            outcomes = events_ingest(app=app, items=items)
        return outcomes, len(queries)

    batch("warm", 1)  # caches the app's configurations
    small, small_queries = batch("small", 5)
    large, large_queries = batch("large", 50)
    # The same statements, but for SQLite cutting long inserts at 999 values (it was one
    # more query per event for the device, and one per event with postbacks).
    assert large_queries <= small_queries + 5, (small_queries, large_queries)
    assert all(outcome.event.postbacks_scheduled == 1 for outcome in small + large)
    stored = Event.objects.filter(event_id__startswith="large-").values_list("postbacks_scheduled", flat=True)
    assert list(stored) == [1] * 100


def test_an_event_is_stored_with_its_postback_count_not_updated_after(app):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    factories.make_custom_postback(app, event="install")
    send(app, "install", T0, adid="38400000-8cf0-11bd-b23e-10b96e400001")  # caches the configurations
    with CaptureQueriesContext(connection) as queries:
        event = send(app, "install", T0)
    assert event.postbacks_scheduled == 1
    assert Event.objects.get(pk=event.pk).postbacks_scheduled == 1
    assert not [query["sql"] for query in queries if query["sql"].startswith("UPDATE")]
