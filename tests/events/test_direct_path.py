"""A lone event that needs no attribution decision is stored in one statement
(events.services.event_record_direct).

Whatever it stores must be exactly what the rules (events_attribute, events_insert) store: the same
scenario of clicks and events, played on two apps, one through each path, leaves the same
devices, identifiers, attribution and events.
"""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events.app_cache import app_profile
from events.models import Click, Device, DeviceIdentifier, Event
from events.services import EventInput, click_record, events_attribute, events_insert
from partners.models import Partner
from postbacks.configuration_cache import app_configurations
from postbacks.ingest import events_ingest
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
_apps = itertools.count()

ids = st.dictionaries(
    st.sampled_from(["adid", "idfv"]),
    st.sampled_from(["1", "2"]),
    min_size=1,
)
clicks = st.tuples(st.just("click"), st.sampled_from(["acquisition", "reengagement"]), st.integers(0, 96), ids)
events = st.tuples(
    st.just("event"),
    st.sampled_from(["install", "session_begin", "purchase"]),
    st.integers(0, 96),
    ids,
    st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]),  # repeats are duplicates
    # Tracking and consent, reported or not: the device keeps the latest by event time.
    st.sampled_from(
        [
            {},
            {"att_status": "denied"},
            {"att_status": "authorized", "limit_ad_tracking": True},
            {"limit_ad_tracking": False, "consent_ad_user_data": False},
            {"consent_ad_personalization": True},
            {"device_model": "Pixel 8", "language": "en-US"},
            {"att_status": "denied", "device_model": "iPhone15,2", "language": "pt-BR"},
        ]
    ),
)
steps = st.lists(clicks | events, min_size=1, max_size=12)
# In time order most steps build on the ones before (click, install, reengagement click,
# session); in any order they also cover backdated events.
scenarios = st.tuples(steps, st.booleans()).map(
    lambda drawn: sorted(drawn[0], key=lambda step: step[2]) if drawn[1] else drawn[0]
)


def play(scenario, *, direct: bool, reengagement_trackers: bool):
    app = factories.make_app(factories.make_account(f"Account {next(_apps)}"))
    network = Partner.objects.get_or_create(slug="net", defaults={"name": "Net", "kind": Partner.Kind.NETWORK})[0]
    trackers = {"acquisition": factories.make_tracker(app, network, campaign_name="launch")}
    if reengagement_trackers:
        trackers["reengagement"] = factories.make_tracker(app, network, kind="reengagement")
    for step in scenario:
        if step[0] == "click":
            _, kind, hours, device_ids = step
            tracker = trackers.get(kind, trackers["acquisition"])
            click_record(
                tracker=tracker,
                clicked_at=T0 + timedelta(hours=hours),
                device_ids=device_ids,
                click_id="",
                ip=None,
                user_agent="",
                parameters={},
            )
        else:
            _, name, hours, device_ids, event_id, tracking = step
            item = EventInput(
                event_id=event_id,
                name=name,
                device_ids=device_ids,
                occurred_at=T0 + timedelta(hours=hours),
                ip="203.0.113.7",
                user_agent="Dalvik/2.1.0",
                os_version="14",
                app_version="3.2.1",
                country="US",
                revenue=Decimal("4.99") if name == "purchase" else None,
                currency="USD" if name == "purchase" else "",
                value=f"step {hours}",
                properties={"hours": hours, "ids": device_ids},
                **tracking,
            )
            if direct:
                events_ingest(app=app, items=[item])
            else:
                with transaction.atomic():
                    attributed = events_attribute(app=app, items=[item], received_at=clock.now())
                    events_insert(events=attributed.new_events)
    return snapshot(app, trackers)


def snapshot(app, trackers) -> dict:
    """The app's stored state with its own primary keys replaced by order of creation."""
    device_rank = {
        pk: rank for rank, pk in enumerate(Device.objects.filter(app=app).order_by("pk").values_list("pk", flat=True))
    }
    click_rank = {
        pk: rank for rank, pk in enumerate(Click.objects.filter(app=app).order_by("pk").values_list("pk", flat=True))
    }
    tracker_kind = {tracker.pk: kind for kind, tracker in trackers.items()}
    return {
        "devices": [
            (
                device.installed_at,
                device.install_count,
                tracker_kind.get(device.install_tracker_id),
                click_rank.get(device.install_click_id),
                device.network_id is not None,
                device.campaign_name,
                device.reengaged_at,
                tracker_kind.get(device.reengagement_tracker_id),
                click_rank.get(device.reengagement_click_id),
                device.att_status,
                device.limit_ad_tracking,
                device.consent_ad_user_data,
                device.consent_ad_personalization,
                device.tracking_reported_at,
            )
            for device in Device.objects.filter(app=app).order_by("pk")
        ],
        "identifiers": sorted(
            (kind, value, device_rank[device_id])
            for kind, value, device_id in DeviceIdentifier.objects.filter(app=app).values_list(
                "kind", "value", "device_id"
            )
        ),
        "events": [
            {
                **{
                    field.attname: getattr(event, field.attname)
                    for field in Event._meta.concrete_fields
                    if field.attname not in ("id", "app_id", "device_id", "received_at")
                },
                "device": device_rank[event.device_id],
            }
            for event in Event.objects.filter(app=app).order_by("pk")
        ],
    }


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(scenario=scenarios, reengagement_trackers=st.booleans())
# Stories the search seldom builds on its own: a reengagement, an attributed install.
@example(
    scenario=[
        ("event", "install", 10, {"adid": "1"}, "e1", {}),
        ("click", "reengagement", 20, {"adid": "1"}),
        ("event", "session_begin", 30, {"adid": "1"}, "e2", {}),
        ("event", "purchase", 31, {"adid": "1", "idfv": "1"}, "e3", {}),
    ],
    reengagement_trackers=True,
)
@example(
    scenario=[
        ("click", "acquisition", 5, {"idfv": "2"}),
        ("event", "install", 10, {"adid": "1", "idfv": "2"}, "e1", {}),
    ],
    reengagement_trackers=False,
)
# Tracking reported by an install, then by later and earlier events, and by a duplicate.
@example(
    scenario=[
        ("event", "install", 10, {"adid": "1"}, "e1", {"att_status": "authorized", "limit_ad_tracking": True}),
        ("event", "session_begin", 30, {"adid": "1"}, "e2", {"att_status": "denied"}),
        ("event", "purchase", 20, {"adid": "1"}, "e3", {"consent_ad_personalization": True}),
        ("event", "purchase", 40, {"adid": "1"}, "e2", {"limit_ad_tracking": False, "consent_ad_user_data": False}),
        ("event", "purchase", 50, {"adid": "1"}, "e4", {}),
    ],
    reengagement_trackers=False,
)
# The device's model and language, stored with each event on both paths.
@example(
    scenario=[
        ("event", "install", 10, {"adid": "1"}, "e1", {"device_model": "Pixel 8", "language": "en-US"}),
        ("event", "session_begin", 30, {"adid": "1"}, "e2", {"device_model": "iPhone15,2", "language": "pt-BR"}),
        ("event", "purchase", 40, {"adid": "1"}, "e3", {}),
    ],
    reengagement_trackers=False,
)
def test_one_statement_stores_what_the_transaction_would(scenario, reengagement_trackers):
    direct = play(scenario, direct=True, reengagement_trackers=reengagement_trackers)
    general = play(scenario, direct=False, reengagement_trackers=reengagement_trackers)
    assert direct == general


def send(app, name, event_id, tracking=None, **device_ids):
    """The outcome, and the statements it took once the app's settings are cached (savepoints,
    which only a caller's transaction needs, are not counted)."""
    app_profile(app), app_configurations(app)
    data = EventInput(event_id=event_id, name=name, device_ids=device_ids, occurred_at=T0, **(tracking or {}))
    with CaptureQueriesContext(connection) as queries:
        outcome = events_ingest(app=app, items=[data])[0]
    return outcome, sum(1 for query in queries if "SAVEPOINT" not in query["sql"])


def test_plain_events_take_one_statement_on_postgresql(app):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    # An install is an attribution decision: the rules take it, in a transaction.
    install, statements = send(app, "install", "i1", adid="a", idfv="v")
    assert install.created and statements > 1
    session, statements = send(app, "session_begin", "s1", adid="a", idfv="v")
    assert session.created and statements == 1
    assert session.event.device_id == install.event.device_id
    # A new identifier for a known device needs the transaction path, which links it.
    linked, statements = send(app, "purchase", "p1", adid="a", idfa="f")
    assert linked.created and statements > 1
    assert DeviceIdentifier.objects.get(kind="idfa").device_id == install.event.device_id


def test_tracking_and_consent_are_kept_by_the_rules(app):
    install, _ = send(app, "install", "i1", {"att_status": "denied", "limit_ad_tracking": True}, adid="a")
    assert install.created
    session, _ = send(app, "session_begin", "s1", {"att_status": "authorized"}, adid="a")
    assert session.created
    device = Device.objects.get(pk=install.event.device_id)
    assert (device.att_status, device.limit_ad_tracking, device.tracking_reported_at) == ("authorized", True, T0)
    assert (session.event.att_status, session.event.limit_ad_tracking) == ("authorized", None)


def test_a_repeated_install_event_id_leaves_no_device_behind(app):
    first, _ = send(app, "install", "i1", adid="a")
    again, _ = send(app, "install", "i1", adid="b")  # same event_id, other device: a duplicate
    assert not again.created and again.event.pk == first.event.pk
    assert Device.objects.filter(app=app).count() == 1
    assert not DeviceIdentifier.objects.filter(value="b").exists()
    repeated, _ = send(app, "session_begin", "i1", adid="a")
    assert not repeated.created and repeated.event.pk == first.event.pk
    assert Event.objects.filter(app=app).count() == 1
