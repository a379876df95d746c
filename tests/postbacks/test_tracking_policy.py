"""What every postback withholds for tracking and consent, and attributed_to_partner.

The policy (postbacks/services.py tracking_for): the IDFA is sent only when App Tracking
Transparency is authorized (the event's status, else the device's latest), and no advertising
ID at all when the user limits ad tracking. Asserted on the stored delivery's request.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from events.services import EventInput, click_record
from partners.models import Partner
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from postbacks.rendering import render_postback, sample_values
from project import clock
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
IDFV = "599f9c00-92dc-4b5c-9464-7971f01f8370"
MACROS = ["idfa", "adid", "idfv", "att_status", "limit_ad_tracking", "consent_ad_user_data"]


@pytest.fixture
def ios_app(account):
    return factories.make_app(account, name="Rocket iOS", platform="ios", package="com.acme.rocketios")


def send(app, event_id, *, name="install", hours=0, device_ids=None, **tracking):
    at = T0 + timedelta(hours=hours)
    data = EventInput(
        event_id=event_id,
        name=name,
        device_ids=device_ids or {"idfa": IDFA, "idfv": IDFV},
        occurred_at=at,
        **tracking,
    )
    with clock.frozen(at + timedelta(seconds=1)):
        return events_ingest(app=app, items=[data])[0].event


def sent(event, configuration) -> dict:
    delivery = Delivery.objects.get(event=event, configuration=configuration)
    assert delivery.status == Delivery.Status.SCHEDULED
    return {name: values[0] for name, values in parse_qs(urlsplit(delivery.url).query, keep_blank_values=True).items()}


def test_custom_idfa_is_sent_only_when_tracking_is_authorized(ios_app):
    postback = factories.make_custom_postback(ios_app, macros=MACROS)
    factories.make_custom_postback(ios_app, event="purchase", macros=MACROS)
    authorized = send(ios_app, "i1", att_status="authorized", consent_ad_user_data=True)
    query = sent(authorized, postback)
    assert (query["idfa"], query["idfv"], query["att_status"], query["consent_ad_user_data"]) == (
        IDFA,
        IDFV,
        "authorized",
        "1",
    )
    assert Delivery.objects.get(event=authorized).withheld == ""

    for status in ("denied", "restricted", "not_determined"):
        event = send(ios_app, f"i-{status}", device_ids={"idfa": IDFA, "device_id": status}, att_status=status)
        query = sent(event, postback)
        assert (query["idfa"], query["att_status"]) == ("", status)
        assert Delivery.objects.get(event=event).withheld == (
            f"IDFA withheld: App Tracking Transparency not authorized (att_status {status})."
        )


def test_custom_idfa_follows_the_devices_latest_status_when_the_event_reports_none(ios_app):
    postback = factories.make_custom_postback(ios_app, event="purchase", macros=MACROS)
    send(ios_app, "i1", att_status="authorized")
    purchase = send(ios_app, "p1", name="purchase", hours=1)
    assert sent(purchase, postback)["idfa"] == IDFA
    send(ios_app, "s1", name="session_begin", hours=2, att_status="denied")
    purchase = send(ios_app, "p2", name="purchase", hours=3)
    query = sent(purchase, postback)
    assert (query["idfa"], query["att_status"]) == ("", "denied")
    # The event's own status wins over the device's.
    purchase = send(ios_app, "p3", name="purchase", hours=4, att_status="authorized")
    assert sent(purchase, postback)["idfa"] == IDFA


def test_in_a_batch_each_event_reads_the_status_as_it_stood_then(ios_app):
    postback = factories.make_custom_postback(ios_app, event="purchase", macros=MACROS)
    items = [
        EventInput(event_id="i1", name="install", device_ids={"idfa": IDFA}, occurred_at=T0, att_status="denied"),
        EventInput(event_id="p1", name="purchase", device_ids={"idfa": IDFA}, occurred_at=T0 + timedelta(hours=1)),
        EventInput(
            event_id="s1",
            name="session_begin",
            device_ids={"idfa": IDFA},
            occurred_at=T0 + timedelta(hours=2),
            att_status="authorized",
        ),
        EventInput(event_id="p2", name="purchase", device_ids={"idfa": IDFA}, occurred_at=T0 + timedelta(hours=3)),
    ]
    with clock.frozen(T0 + timedelta(hours=4)):
        outcomes = events_ingest(app=ios_app, items=items)
    assert sent(outcomes[1].event, postback)["idfa"] == ""  # denied when it happened
    assert sent(outcomes[3].event, postback)["idfa"] == IDFA


def test_custom_idfa_is_withheld_when_no_status_was_ever_reported(ios_app):
    postback = factories.make_custom_postback(ios_app, macros=MACROS)
    event = send(ios_app, "i1")
    assert sent(event, postback)["idfa"] == ""
    assert Delivery.objects.get(event=event).withheld == (
        "IDFA withheld: App Tracking Transparency not authorized (no att_status reported)."
    )


def test_custom_no_advertising_id_under_limit_ad_tracking(ios_app):
    postback = factories.make_custom_postback(ios_app, macros=MACROS, method="POST")
    event = send(
        ios_app,
        "i1",
        device_ids={"idfa": IDFA, "adid": ADID, "idfv": IDFV},
        att_status="authorized",
        limit_ad_tracking=True,
    )
    delivery = Delivery.objects.get(event=event, configuration=postback)
    body = json.loads(delivery.body)
    assert (body["idfa"], body["adid"], body["idfv"], body["limit_ad_tracking"]) == ("", "", IDFV, "1")
    assert IDFA not in delivery.url + delivery.body and ADID not in delivery.url + delivery.body
    assert delivery.withheld == (
        "Advertising ID (adid) withheld: the user limits ad tracking (limit_ad_tracking). "
        "IDFA withheld: the user limits ad tracking (limit_ad_tracking)."
    )
    # Reported once, it holds for the device's later events.
    later = send(ios_app, "i2", hours=1, device_ids={"adid": ADID, "idfv": IDFV}, att_status="authorized")
    assert sent(later, postback)["adid"] == ""
    # And lifted by a later report.
    lifted = send(ios_app, "i3", hours=2, device_ids={"adid": ADID, "idfv": IDFV}, limit_ad_tracking=False)
    query = sent(lifted, postback)
    assert (query["adid"], query["limit_ad_tracking"]) == (ADID, "0")


@pytest.fixture
def tiktok(ios_app):
    """A catalogue partner whose templates carry {idfa}."""
    partner = Partner.objects.get(slug="tiktok")
    config = factories.make_partner_configuration(ios_app, partner, tiktok_app_id="7123456789", access_token="A" * 32)
    return factories.make_certified_postback(config, delivery_method="all")


@pytest.mark.parametrize(
    ("tracking", "idfa_sent"),
    [
        ({"att_status": "authorized"}, True),
        ({"att_status": "denied"}, False),
        ({}, False),
        ({"att_status": "authorized", "limit_ad_tracking": True}, False),
    ],
)
def test_certified_partner_receives_the_idfa_only_as_the_policy_allows(ios_app, tiktok, tracking, idfa_sent):
    event = send(ios_app, "i1", **tracking)
    delivery = Delivery.objects.get(event=event, configuration=tiktok)
    assert delivery.status == Delivery.Status.SCHEDULED
    request = (delivery.url + delivery.body).lower()
    # TikTok receives the IDFA as the SHA-256 of the trimmed, lower-cased IDFA (docs/partners/tiktok.md), never raw.
    assert (hashlib.sha256(IDFA.lower().encode()).hexdigest() in request) is idfa_sent
    assert IDFA not in request
    assert bool(delivery.withheld) is not idfa_sent


def test_the_event_page_says_what_was_withheld_and_why(client, support, ios_app, tiktok):
    factories.make_custom_postback(ios_app, macros=MACROS, title="Warehouse")
    event = send(ios_app, "i1", att_status="denied")
    client.force_login(support)
    page = client.get(reverse("admin:events_event_change", args=[event.pk])).content.decode()
    assert page.count("IDFA withheld: App Tracking Transparency not authorized (att_status denied).") == 2
    delivery = Delivery.objects.get(event=event, configuration=tiktok)
    page = client.get(reverse("admin:postbacks_delivery_change", args=[delivery.pk])).content.decode()
    assert "IDFA withheld: App Tracking Transparency not authorized" in page


# attributed_to_partner ---------------------------------------------------------------------


def claimed_by(partner: Partner) -> Partner:
    """Give a test partner's templates the macro, as the catalogue's will (Unity attributed, AppLovin isclaimable)."""
    for template in partner.templates.all():
        template.body = {**template.body, "claim": "{attributed_to_partner}"}
        template.save()
    return partner


def test_attributed_to_partner_tells_each_network_on_all_whether_it_won(app):
    winner, other = claimed_by(factories.make_partner("net_a")), claimed_by(factories.make_partner("net_b"))
    winner_postback = factories.make_certified_postback(
        factories.make_partner_configuration(app, winner), delivery_method="all"
    )
    other_postback = factories.make_certified_postback(
        factories.make_partner_configuration(app, other), delivery_method="all"
    )
    custom = factories.make_custom_postback(app, macros=["attributed_to_partner"])
    tracker = factories.make_tracker(app, winner, campaign_name="launch")
    click_record(
        tracker=tracker,
        clicked_at=T0 - timedelta(hours=1),
        device_ids={"adid": ADID},
        click_id="clk-1",
        ip=None,
        user_agent="",
        parameters={},
    )
    attributed = send(app, "i1", device_ids={"adid": ADID})
    assert sent(attributed, winner_postback)["claim"] == "1"
    assert sent(attributed, other_postback)["claim"] == "0"
    assert sent(attributed, custom)["attributed_to_partner"] == "0"
    organic = send(app, "i2", device_ids={"adid": "48400000-8cf0-11bd-b23e-10b96e40000d"})
    assert sent(organic, winner_postback)["claim"] == "0"
    assert sent(organic, other_postback)["claim"] == "0"


def test_attributed_to_partner_counts_the_reengagement(app):
    first, second = claimed_by(factories.make_partner("net_a")), claimed_by(factories.make_partner("net_b"))
    postbacks = {
        partner.slug: factories.make_certified_postback(
            factories.make_partner_configuration(app, partner), event="purchase", delivery_method="all"
        )
        for partner in (first, second)
    }
    for tracker, hours in (
        (factories.make_tracker(app, first), -1),
        (factories.make_tracker(app, second, kind="reengagement"), 5),
    ):
        click_record(
            tracker=tracker,
            clicked_at=T0 + timedelta(hours=hours),
            device_ids={"adid": ADID},
            click_id="",
            ip=None,
            user_agent="",
            parameters={},
        )
    send(app, "i1", device_ids={"adid": ADID})
    purchase = send(app, "p1", name="purchase", hours=6, device_ids={"adid": ADID})
    body = {
        slug: json.loads(Delivery.objects.get(event=purchase, configuration=postback).body)
        for slug, postback in postbacks.items()
    }
    assert (body["net_a"]["claim"], body["net_b"]["claim"]) == ("0", "1")


def test_the_preview_sample_is_attributed_to_the_partner(app):
    network = claimed_by(factories.make_partner("net_a"))
    postback = factories.make_certified_postback(factories.make_partner_configuration(app, network))
    assert sample_values(configuration=postback)["attributed_to_partner"] == "1"
    request = render_postback(configuration=postback, values=sample_values(configuration=postback))
    assert parse_qs(urlsplit(request.url).query)["claim"] == ["1"]
    custom = factories.make_custom_postback(app, macros=["attributed_to_partner"])
    request = render_postback(configuration=custom, values=sample_values(configuration=custom))
    assert parse_qs(urlsplit(request.url).query)["attributed_to_partner"] == ["0"]
