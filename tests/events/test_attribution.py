"""Attribution: which network earned an install, reengagements, reinstalls, device identity."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.models import Device, DeviceIdentifier
from events.services import EventInput, click_record
from partners.models import Partner
from postbacks.ingest import events_ingest
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
IDFV = "599f9c00-92dc-4b5c-9464-7971f01f8370"


@pytest.fixture
def networks(db):
    return factories.make_partner("net_a"), factories.make_partner("net_b")


@pytest.fixture
def trackers(app, networks):
    agency = factories.make_partner("agency_x", kind=Partner.Kind.AGENCY)
    return {
        "a": factories.make_tracker(app, networks[0], campaign_id="c-a", campaign_name="A launch"),
        "b": factories.make_tracker(app, networks[1], agency=agency, campaign_id="c-b", campaign_name="B launch"),
        "a_re": factories.make_tracker(app, networks[0], kind="reengagement", campaign_name="A comeback"),
        "b_re": factories.make_tracker(app, networks[1], kind="reengagement", campaign_name="B comeback"),
    }


def click(tracker, at, **ids):
    return click_record(
        tracker=tracker,
        clicked_at=at,
        device_ids=ids,
        click_id=f"clk-{at:%H%M%S}",
        ip=None,
        user_agent="",
        parameters={},
    )


def send(app, name, at, event_id=None, **ids):
    event_id = event_id or f"{name}-{at.isoformat()}-{'-'.join(sorted(ids.values()))}"
    data = EventInput(event_id=event_id, name=name, device_ids=ids, occurred_at=at)
    return events_ingest(app=app, items=[data])[0].event


def test_last_click_wins(app, trackers):
    click(trackers["a"], T0 - timedelta(hours=5), adid=ADID)
    latest = click(trackers["b"], T0 - timedelta(hours=1), adid=ADID)
    device = send(app, "install", T0, adid=ADID).device
    assert device.install_click == latest
    assert device.install_tracker == trackers["b"]
    assert (device.network.slug, device.agency.slug) == ("net_b", "agency_x")
    assert (device.campaign_id, device.campaign_name) == ("c-b", "B launch")
    assert device.installed_at == T0


@pytest.mark.parametrize(
    ("click_age", "attributed"),
    [
        (timedelta(days=7), True),  # exactly at the window's edge
        (timedelta(days=7, seconds=1), False),
        (timedelta(seconds=0), True),
        (-timedelta(seconds=1), False),  # a click after the install cannot have caused it
    ],
)
def test_lookback_window_edges(app, trackers, click_age, attributed):
    click(trackers["a"], T0 - click_age, adid=ADID)
    assert send(app, "install", T0, adid=ADID).device.is_attributed is attributed


def test_lookback_window_is_the_apps(app, trackers):
    app.lookback_days = 1
    app.save()
    click(trackers["a"], T0 - timedelta(days=2), adid=ADID)
    assert not send(app, "install", T0, adid=ADID).device.is_attributed


def test_any_shared_identifier_matches_across_id_types(app, trackers):
    click(trackers["a"], T0 - timedelta(hours=1), idfa=IDFA)
    device = send(app, "install", T0, idfv=IDFV, idfa=IDFA).device
    assert device.install_tracker == trackers["a"]
    click(trackers["b"], T0 - timedelta(hours=1), device_id="user-42")
    other = send(app, "install", T0, device_id="user-42").device
    assert other.install_tracker == trackers["b"]


def test_no_matching_click_is_organic(app, trackers):
    click(trackers["a"], T0 - timedelta(hours=1), adid="11111111-1111-1111-1111-111111111111")
    click(trackers["a_re"], T0 - timedelta(hours=1), adid=ADID)  # reengagement trackers never attribute installs
    device = send(app, "install", T0, adid=ADID).device
    assert not device.is_attributed
    assert device.install_tracker is None and device.network is None
    assert device.installed_at == T0


def test_other_apps_clicks_never_attribute(app, other_app, networks):
    foreign = factories.make_tracker(other_app, networks[0])
    click(foreign, T0 - timedelta(hours=1), adid=ADID)
    assert not send(app, "install", T0, adid=ADID).device.is_attributed


def test_reengagement_moves_the_anchor(app, trackers):
    click(trackers["a"], T0 - timedelta(hours=1), adid=ADID)
    device = send(app, "install", T0, adid=ADID).device
    assert device.session_anchor == T0
    click(trackers["b_re"], T0 + timedelta(days=3), adid=ADID)
    purchase = send(app, "purchase", T0 + timedelta(days=3, hours=2), adid=ADID)
    device.refresh_from_db()
    assert purchase.is_reengagement
    assert device.reengaged_at == T0 + timedelta(days=3, hours=2)
    assert device.session_anchor == device.reengaged_at
    assert (device.reengagement_tracker, device.reengagement_network.slug) == (trackers["b_re"], "net_b")
    assert device.reengagement_agency is None  # that tracker runs without an agency
    assert device.install_tracker == trackers["a"]  # the install's attribution is untouched
    later = send(app, "level_complete", T0 + timedelta(days=4), adid=ADID)
    assert not later.is_reengagement  # the same click does not reengage twice


def test_reengagement_needs_a_click_after_the_install_within_the_window(app, trackers):
    click(trackers["a_re"], T0 - timedelta(hours=2), adid=ADID)  # before the install
    send(app, "install", T0, adid=ADID)
    assert not send(app, "purchase", T0 + timedelta(hours=1), adid=ADID).is_reengagement
    click(trackers["a_re"], T0 + timedelta(days=1), adid=ADID)
    assert not send(app, "purchase", T0 + timedelta(days=9), adid=ADID).is_reengagement  # click too old by then
    click(trackers["a"], T0 + timedelta(days=9, hours=1), adid=ADID)  # acquisition trackers never reengage
    assert not send(app, "purchase", T0 + timedelta(days=9, hours=2), adid=ADID).is_reengagement


def test_events_before_any_install_do_not_reengage(app, trackers):
    click(trackers["a_re"], T0 - timedelta(hours=2), adid=ADID)
    assert not send(app, "purchase", T0, adid=ADID).is_reengagement


def test_second_install_is_a_reinstall_not_a_new_attribution(app, trackers):
    click(trackers["a"], T0 - timedelta(hours=1), adid=ADID)
    first = send(app, "install", T0, adid=ADID)
    click(trackers["b"], T0 + timedelta(days=2), adid=ADID)
    second = send(app, "install", T0 + timedelta(days=2, hours=1), adid=ADID)
    device = Device.objects.get(pk=first.device_id)
    assert (first.is_reinstall, second.is_reinstall) == (False, True)
    assert second.device_id == first.device_id
    assert device.install_count == 2
    assert device.install_tracker == trackers["a"]
    assert device.installed_at == T0


def test_a_device_is_one_device_however_many_ids_its_events_carry(app):
    first = send(app, "install", T0, adid=ADID).device
    second = send(app, "session_begin", T0 + timedelta(hours=1), adid=ADID, android_id="9774d56d682e549c").device
    third = send(app, "purchase", T0 + timedelta(hours=2), android_id="9774d56d682e549c").device
    assert first.pk == second.pk == third.pk
    assert Device.objects.filter(app=app).count() == 1
    assert set(DeviceIdentifier.objects.filter(device=first).values_list("kind", flat=True)) == {"adid", "android_id"}


def test_identifiers_owned_by_another_device_stay_with_it(app):
    older = send(app, "install", T0, adid=ADID).device
    newer = send(app, "install", T0, idfv=IDFV).device
    merged = send(app, "purchase", T0 + timedelta(hours=1), adid=ADID, idfv=IDFV).device
    assert merged.pk == older.pk != newer.pk
    assert DeviceIdentifier.objects.get(kind="idfv").device_id == newer.pk


def test_one_batch_follows_the_same_rules_in_order(app, trackers):
    from postbacks.ingest import events_ingest

    click(trackers["a"], T0 - timedelta(hours=1), adid=ADID)
    click(trackers["b_re"], T0 + timedelta(days=2), adid=ADID)
    items = [
        EventInput(event_id="i1", name="install", device_ids={"adid": ADID}, occurred_at=T0),
        EventInput(event_id="s1", name="session_begin", device_ids={"adid": ADID, "idfv": IDFV}, occurred_at=T0),
        EventInput(
            event_id="p1", name="purchase", device_ids={"idfv": IDFV}, occurred_at=T0 + timedelta(days=2, hours=1)
        ),
        EventInput(event_id="i1", name="install", device_ids={"adid": ADID}, occurred_at=T0),  # repeated in the batch
        EventInput(event_id="i2", name="install", device_ids={"idfv": IDFV}, occurred_at=T0 + timedelta(days=3)),
        EventInput(event_id="o1", name="install", device_ids={"device_id": "organic"}, occurred_at=T0),
    ]
    outcomes = events_ingest(app=app, items=items)
    assert [outcome.created for outcome in outcomes] == [True, True, True, False, True, True]
    assert outcomes[3].event.pk == outcomes[0].event.pk
    device = Device.objects.get(pk=outcomes[0].event.device_id)
    assert {outcome.event.device_id for outcome in outcomes[:5]} == {device.pk}
    assert device.install_tracker == trackers["a"]
    assert device.reengagement_tracker == trackers["b_re"]
    assert outcomes[2].event.is_reengagement
    assert outcomes[4].event.is_reinstall and device.install_count == 2
    assert not Device.objects.get(pk=outcomes[5].event.device_id).is_attributed
    assert Device.objects.filter(app=app).count() == 2


def test_installs_of_devices_first_seen_by_sessions_are_attributed_without_a_statement_each(app, trackers):
    def installs_after_sessions(prefix: str, size: int) -> int:
        ids = [{"device_id": f"{prefix}-{number}"} for number in range(size)]
        sessions = [
            EventInput(event_id=f"{prefix}-s{n}", name="session_begin", device_ids=i, occurred_at=T0)
            for n, i in enumerate(ids)
        ]
        events_ingest(app=app, items=sessions)  # the devices are stored, not installed
        for n, i in enumerate(ids):
            click(trackers["a" if n % 2 else "b"], T0 + timedelta(minutes=1), **i)
        installs = [
            EventInput(event_id=f"{prefix}-i{n}", name="install", device_ids=i, occurred_at=T0 + timedelta(minutes=5))
            for n, i in enumerate(ids)
        ]
        with CaptureQueriesContext(connection) as queries:
            events_ingest(app=app, items=installs)
        return len(queries)

    small, large = installs_after_sessions("small", 3), installs_after_sessions("large", 40)
    assert large <= small + 2, (small, large)  # was one UPDATE per device
    devices = Device.objects.filter(identifiers__value__startswith="large-").select_related("install_tracker")
    assert devices.count() == 40
    for device in devices:
        number = int(device.identifiers.get().value.split("-")[1])
        expected = trackers["a" if number % 2 else "b"]
        assert device.install_count == 1
        assert device.installed_at == T0 + timedelta(minutes=5)
        assert (device.install_tracker, device.network_id, device.campaign_name) == (
            expected,
            expected.network_id,
            expected.campaign_name,
        )


def test_a_batch_install_is_attributed_by_an_id_its_device_got_elsewhere(app, networks):
    """Only an install's linked ids are looked up among the clicks: an id an earlier item of
    the batch, or the stored device, links to the installing device still finds its click."""
    tracker = factories.make_tracker(app, networks[0], campaign_name="Linked")
    first_android_id, second_android_id = "a1b2c3d4e5f60718", "0f1e2d3c4b5a6978"
    click(tracker, T0 - timedelta(hours=1), android_id=first_android_id)
    click(tracker, T0 - timedelta(hours=2), android_id=second_android_id)
    send(app, "session_begin", T0 - timedelta(hours=3), adid=IDFV, android_id=second_android_id)
    items = [
        EventInput("s-1", "session_begin", {"adid": ADID, "android_id": first_android_id}, T0 - timedelta(minutes=9)),
        EventInput("p-1", "purchase", {"adid": IDFA}, T0 - timedelta(minutes=8)),
        EventInput("i-1", "install", {"adid": ADID}, T0),
        EventInput("i-2", "install", {"adid": IDFV}, T0),
    ]
    outcomes = events_ingest(app=app, items=items)
    assert outcomes[2].event.device.install_click.android_id == first_android_id  # linked by s-1
    assert outcomes[3].event.device.install_click.android_id == second_android_id  # by the stored device
    assert outcomes[1].event.device.install_click is None
