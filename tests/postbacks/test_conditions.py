"""Conditions on postbacks (issue 17 §4, Adjust's conditional callbacks, Kochava's country lists):
rules on macro values that must all hold; an event that fails one is a skipped delivery whose
reason names the condition."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from events.services import app_issue_api_key
from postbacks.conditions import condition_unmet, conditions_problems
from postbacks.config_io import ConfigImportError, config_export, config_import
from postbacks.models import Delivery, PostbackConfiguration
from project import clock

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
COUNTRIES = [{"macro": "country", "op": "in", "value": ["US", "CA"]}]
PAID = [{"macro": "revenue", "op": "greater_than", "value": 0}]


def custom_postback(app, event: str, conditions: list) -> PostbackConfiguration:
    postback = PostbackConfiguration(
        app=app,
        event=event,
        kind="custom",
        destination_url="https://hooks.example.com/pb",
        macros=["event_id", "country"],
        conditions=conditions,
    )
    postback.full_clean()
    postback.save()
    return postback


def post_event(client, key: str, body: dict, at: datetime = T0):
    with clock.frozen(at):
        return client.post(
            "/api/v1/events", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )


@pytest.fixture
def key(app):
    return app_issue_api_key(app=app)


def test_an_event_outside_the_countries_is_skipped_and_the_reason_names_the_condition(client, app, key):
    postback = custom_postback(app, "install", COUNTRIES)
    for number, (event_id, country) in enumerate((("evt-us", "US"), ("evt-fr", "FR"), ("evt-none", None))):
        body = {"event_id": event_id, "event": "install", "device": {"adid": f"{ADID[:-1]}{number}"}}
        if country:
            body["country"] = country
        assert post_event(client, key, body).status_code == 202
    outcome = {d.event.event_id: d for d in Delivery.objects.filter(configuration=postback).select_related("event")}
    assert outcome["evt-us"].status == Delivery.Status.SCHEDULED
    assert outcome["evt-fr"].status == Delivery.Status.SKIPPED
    assert outcome["evt-fr"].skip_reason == "The condition “country is one of US, CA” does not hold: country is 'FR'."
    assert (
        outcome["evt-none"].skip_reason == "The condition “country is one of US, CA” does not hold: country is empty."
    )


def test_every_condition_must_hold_and_numbers_compare_as_numbers(client, app, key):
    postback = custom_postback(app, "purchase", [*COUNTRIES, *PAID])
    post_event(client, key, {"event_id": "i", "event": "install", "device": {"adid": ADID}, "country": "US"})
    later = T0 + timedelta(hours=1)
    for event_id, revenue, country in (("free", "0", "US"), ("paid", "10.5", "CA"), ("abroad", "9", "DE")):
        body = {"event_id": event_id, "event": "purchase", "device": {"adid": ADID}, "country": country}
        body |= {"revenue": revenue, "currency": "USD"}
        assert post_event(client, key, body, later).status_code == 202
    outcome = {d.event.event_id: d for d in Delivery.objects.filter(configuration=postback).select_related("event")}
    assert outcome["paid"].status == Delivery.Status.SCHEDULED
    assert "revenue is greater than 0" in outcome["free"].skip_reason
    assert "country is one of US, CA" in outcome["abroad"].skip_reason
    # "10.5" > "9" as numbers, though not as text
    assert condition_unmet([{"macro": "revenue", "op": "greater_than", "value": "9"}], {"revenue": "10.5"}) is None
    assert condition_unmet([{"macro": "revenue", "op": "less_than", "value": 100}], {"revenue": ""}) is not None


@pytest.mark.parametrize(
    ("op", "value", "actual", "holds"),
    [
        ("equals", "Play", "play", True),
        ("not_equals", "play", "PLAY", False),
        ("contains", "pixel", "Google Pixel 8", True),
        ("not_in", ["US"], "FR", True),
        ("not_in", ["US"], "us", False),
        ("less_than", 5, "4.99", True),
        ("greater_than", "-1", "abc", False),
    ],
)
def test_each_operator(op, value, actual, holds):
    assert (
        condition_unmet([{"macro": "device_model", "op": op, "value": value}], {"device_model": actual}) is None
    ) is holds


def test_a_sessionbegin_skipped_by_a_condition_leaves_its_24_hour_period_for_a_later_one(client, app, key):
    postback = custom_postback(app, "session_begin", COUNTRIES)
    post_event(client, key, {"event_id": "i", "event": "install", "device": {"adid": ADID}, "country": "US"})
    day = T0 + timedelta(hours=30)
    post_event(
        client, key, {"event_id": "s1", "event": "session_begin", "device": {"adid": ADID}, "country": "FR"}, day
    )
    later = day + timedelta(hours=1)
    post_event(
        client, key, {"event_id": "s2", "event": "session_begin", "device": {"adid": ADID}, "country": "US"}, later
    )
    outcome = {d.event.event_id: d for d in Delivery.objects.filter(configuration=postback).select_related("event")}
    assert outcome["s1"].status == Delivery.Status.SKIPPED and "country" in outcome["s1"].skip_reason
    assert outcome["s2"].status == Delivery.Status.SCHEDULED


@pytest.mark.parametrize(
    ("conditions", "problem"),
    [
        (
            {"macro": "country"},
            'conditions: give a list, e.g. [{"macro": "country", "op": "in", "value": ["US", "CA"]}]',
        ),
        ([{"macro": "planet", "op": "equals", "value": "x"}], "conditions[0].macro: 'planet' is not a macro"),
        ([{"macro": "country", "op": "like", "value": "x"}], "conditions[0].op: 'like' is not one of equals"),
        ([{"macro": "country", "op": "in", "value": "US"}], "conditions[0].value: in takes a non-empty list"),
        (
            [{"macro": "revenue", "op": "greater_than", "value": "lots"}],
            "conditions[0].value: greater_than takes a number",
        ),
        ([{"macro": "country", "op": "equals", "value": "US", "and": 1}], "conditions[0].and: unknown key"),
    ],
)
def test_a_bad_condition_is_refused_with_its_position(conditions, problem):
    problems = conditions_problems(conditions)
    assert problems and problems[0].startswith(problem), problems


def test_the_admin_edits_conditions_with_validation_and_shows_the_skip_on_the_event_page(client, app, manager):
    postback = custom_postback(app, "install", [])
    client.force_login(manager)
    url = reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk])
    page = client.get(url).content.decode()
    assert "Conditions (all must hold for the postback to fire)" in page and "greater_than" in page
    form = {
        "event": "install",
        "kind": "custom",
        "status": "active",
        "destination_url": postback.destination_url,
        "method": "GET",
        "macros": ["event_id"],
        "delay_seconds": "0",
        "retry_attempts": "3",
        "delivery_method": postback.delivery_method,
    }
    bad = client.post(url, {**form, "conditions": '[{"macro": "country", "op": "in", "value": "US"}]'})
    assert bad.status_code == 200
    assert "conditions[0].value: in takes a non-empty list of text values" in bad.content.decode()
    good = client.post(url, {**form, "conditions": json.dumps(COUNTRIES)})
    assert good.status_code == 302
    postback.refresh_from_db()
    assert postback.conditions == COUNTRIES

    key = app_issue_api_key(app=app)
    post_event(client, key, {"event_id": "evt-fr", "event": "install", "device": {"adid": ADID}, "country": "FR"})
    delivery = Delivery.objects.get(configuration=postback)
    page = client.get(reverse("admin:events_event_change", args=[delivery.event_id])).content.decode()
    assert "country is one of US, CA" in page


def test_conditions_round_trip_through_export_and_import(app):
    custom_postback(app, "install", COUNTRIES)
    document = config_export()
    [exported] = document["apps"][0]["postbacks"]
    assert exported["conditions"] == COUNTRIES
    PostbackConfiguration.objects.all().delete()
    config_import(document=document)
    assert PostbackConfiguration.objects.get().conditions == COUNTRIES
    document["apps"][0]["postbacks"][0]["conditions"] = [{"macro": "country", "op": "between", "value": "x"}]
    with pytest.raises(ConfigImportError) as error:
        config_import(document=document)
    assert any(
        problem.startswith("apps[0].postbacks[0].conditions[0].op: 'between' is not one of")
        for problem in error.value.problems
    ), error.value.problems


def test_a_postback_without_conditions_exports_none(app):
    custom_postback(app, "install", [])
    assert "conditions" not in config_export()["apps"][0]["postbacks"][0]
