"""event_validate's shortcuts must agree with the schema's fields (EventSerializer's): whatever
they accept, the fields accept with the same data; everything else the fields read and word."""

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from events.serializers import EVENT_FIELDS, MAX_JSON_DEPTH, EventSerializer, event_validate
from project import clock
from tests.events.test_api_properties import OPTIONAL_FIELDS, anything, event_bodies

NAMES = ("install", "session_begin", "purchase")
ZERO_UUID_UPPER = "00000000-0000-0000-0000-000000000000".upper()
NOW = datetime.now(UTC)  # the property strategies' timestamps are around the real now

# Text that DRF trims, refuses or normalizes: surrounding blanks, a trailing newline, NUL,
# lone surrogates, upper and lower case, IPv6, numbers where text is expected.
awkward_text = st.text(
    alphabet=st.sampled_from(["a", "Z", "9", " ", "\n", "\t", "\x00", "\ud800", "é", "-"]), max_size=8
)
padded_text = st.tuples(
    st.sampled_from(["", " ", "\t"]),
    st.text(alphabet="aZ9-.", min_size=1, max_size=6),
    st.sampled_from(["", "\n", " "]),
).map("".join)
awkward_text = awkward_text | padded_text
# Tracking and consent: every right value, and near misses (case, blanks, numbers, strings for booleans).
TRACKING_FIELDS = {
    "att_status": st.sampled_from(
        ["authorized", "denied", "restricted", "not_determined", "AUTHORIZED", " denied", "", None, 1, True]
    ),
    "limit_ad_tracking": st.sampled_from([True, False, "true", "false", 0, 1, None, ""]),
    "consent": st.fixed_dictionaries(
        {},
        optional={
            "ad_user_data": st.sampled_from([True, False, 1, 0, "true", None]),
            "ad_personalization": st.sampled_from([True, False, "yes"]),
            "ad_storage": st.booleans(),
        },
    )
    | st.sampled_from([None, True, [], "granted", [True]]),
}
# The device's model and language: plain text, and language tags of every case, near misses and
# lengths around the limits.
DEVICE_FIELDS = {
    "device_model": st.sampled_from(["Pixel 8", "iPhone15,2", "", "x" * 64, "x" * 65, " Pixel 8", None, 8])
    | awkward_text,
    "language": st.sampled_from(
        [
            *("en", "EN", "en-us", "pt-BR", "zh-hant-tw", "es-419", "de-CH-x-Phonebk", "", "e", "en_US", "1en", "en-"),
            *("a" * 8 + "-bc" * 9, "a" * 8 + "-bc" * 10, " en", None, 1),  # 35 and 38 characters
        ]
    )
    | st.text(alphabet=st.sampled_from(["a", "Z", "9", "-", "_", "é"]), max_size=12),
}
tricky_bodies = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str) | awkward_text | st.uuids().map(lambda value: f" {value}\n"),
        "event": st.sampled_from(NAMES) | st.sampled_from(NAMES).map(lambda name: name + "\n") | awkward_text,
        "device": st.fixed_dictionaries(
            {"adid": st.uuids().map(str) | st.uuids().map(lambda value: str(value).upper() + " ")},
            optional={"android_id": st.text(alphabet="0123456789abcdefABCDEF ", max_size=34), "imei": anything},
        ),
    },
    optional={
        **OPTIONAL_FIELDS,
        "ip": st.ip_addresses().map(str) | st.ip_addresses().map(lambda ip: f" {ip}") | awkward_text,
        "country": st.sampled_from(["US", "us", " US", "US\n", "Us", "", " "]) | awkward_text,
        "currency": st.sampled_from(["USD", "usd", "USD ", ""]),
        "revenue": st.sampled_from(["4.99", " 4.99", "1e3", "0.0000001", "-1", "NaN", 4.99, 5, None, True])
        | st.decimals(allow_nan=True, allow_infinity=True).map(str),
        "user_agent": awkward_text,
        "app_version": awkward_text | st.integers(),
        "timestamp": st.sampled_from(["2026-11-23T10:00:00", "2026-11-23 10:00:00+01:00", "", None])
        | OPTIONAL_FIELDS["timestamp"],
        **TRACKING_FIELDS,
        **DEVICE_FIELDS,
    },
)


BASE = {
    "event_id": "e-1",
    "event": "purchase",
    "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
    "revenue": "4.99",
    "currency": "USD",
}
awkward_values = awkward_text | st.integers() | st.booleans() | st.none() | anything
# A valid body with exactly one field made awkward: each difference gets its own chance.
one_field_awkward = st.sampled_from(
    sorted({*BASE, *OPTIONAL_FIELDS, *TRACKING_FIELDS, *DEVICE_FIELDS, "app_version"})
).flatmap(
    lambda field: (tricky_bodies.map(lambda body, field=field: body.get(field, "")) | awkward_values).map(
        lambda value, field=field: {**BASE, field: value}
    )
)


def nested(levels: int) -> list:
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def serializer_result(body):
    """What the schema's fields read, without the shortcuts: (data or None, errors)."""
    return event_validate(body, event_names=NAMES, shortcuts=False)


def test_the_validator_reads_exactly_the_schemas_fields():
    assert tuple(EventSerializer().fields) == EVENT_FIELDS


@settings(max_examples=700, deadline=None)
@given(body=event_bodies | tricky_bodies | one_field_awkward)
@example(body={**BASE, "properties": {"score": float("inf")}})  # found by the search: not JSON
# The fast path's own readings of ids, addresses, amounts and properties, at their edges:
@example(body={**BASE, "device": {"adid": "38400000-8CF0-11BD-B23E-10B96E40000D"}})
@example(body={**BASE, "device": {"adid": "{38400000-8cf0-11bd-b23e-10b96e40000d}"}})
@example(body={**BASE, "device": {"idfa": "00000000-0000-0000-0000-000000000000", "idfv": ZERO_UUID_UPPER}})
@example(body={**BASE, "ip": "01.2.3.4"})
@example(body={**BASE, "ip": "255.255.255.255"})
@example(body={**BASE, "ip": "256.1.1.1"})
@example(body={**BASE, "ip": "1.2.3.\u0664"})
@example(body={**BASE, "revenue": "123456789012.123456"})
@example(body={**BASE, "revenue": "1234567890123"})
@example(body={**BASE, "revenue": "0.1234567"})
@example(body={**BASE, "revenue": "-0"})
@example(body={**BASE, "revenue": "007.50"})
@example(body={**BASE, "revenue": "\u0664.5"})
@example(body={**BASE, "properties": {"note": "\\u0000 is not a NUL"}})
@example(body={**BASE, "properties": {"note": "a\x00b"}})
@example(body={**BASE, "properties": {"k": "x" * 4083}})
@example(body={**BASE, "properties": {"k": "\u00e9" * 680}})
# Text PostgreSQL cannot store, in a field the fast path reads without the serializer's fields:
@example(body={**BASE, "device": {"device_id": "d\x00"}})
@example(body={**BASE, "device": {"device_id": "d\udc00"}})
@example(body={**BASE, "properties": {"k\udc00": 1}})
@example(body={**BASE, "properties": {"k": "\U0001f600"}})
@example(body={**BASE, "properties": {"k": nested(MAX_JSON_DEPTH - 1)}})
@example(body={**BASE, "properties": {"k": nested(MAX_JSON_DEPTH)}})
@example(body={**BASE, "att_status": "authorized", "limit_ad_tracking": True, "consent": {"ad_user_data": False}})
@example(body={**BASE, "limit_ad_tracking": 1})
@example(body={**BASE, "consent": {"ad_user_data": 1}})
@example(body={**BASE, "consent": {"ad_storage": True}})
@example(body={**BASE, "att_status": "Authorized"})
@example(body={**BASE, "device_model": "iPhone15,2", "language": "zh-hant-TW"})
@example(body={**BASE, "language": "de-CH-x-Phonebk"})
@example(body={**BASE, "language": "en-"})
@example(body={**BASE, "device_model": "x" * 65})
def test_what_the_fast_path_accepts_the_serializer_accepts_with_the_same_data(body):
    with clock.frozen(NOW):
        fast = event_validate(body, event_names=NAMES)
        expected, errors = serializer_result(body)
    assert fast == (expected, errors)


def test_ordinary_events_take_the_fast_path():
    ordinary = [
        {"event_id": "e-1", "event": "install", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}},
        {
            "event_id": "w0-17-3811",
            "event": "purchase",
            "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d", "android_id": "38400000c8f011bd"},
            "timestamp": NOW.isoformat(),
            "ip": "203.0.113.7",
            "user_agent": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
            "os_version": "14",
            "app_version": "3.2.1",
            "country": "us",
            "revenue": "4.99",
            "currency": "USD",
            "value": "sku-42",
            "properties": {"screen": "shop", "ab_group": "b"},
            "att_status": "not_determined",
            "limit_ad_tracking": False,
            "consent": {"ad_user_data": True, "ad_personalization": False},
            "device_model": "Pixel 8",
            "language": "pt-br",
        },
    ]
    with clock.frozen(NOW):
        for body in ordinary:
            fast, errors = event_validate(body, event_names=NAMES)
            assert errors is None and fast == serializer_result(body)[0]


def test_anything_refused_is_refused_as_the_fields_word_it():
    refused = [
        {"event_id": "e 1", "event": "install", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}},
        {"event_id": "e1", "event": "refund", "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}},
        {"event_id": "e1", "event": "install", "device": {}},
        {"event_id": "e1", "event": "install", "device": {"adid": "x"}, "surprise": 1},
        {"event_id": "e1", "event": "purchase", "device": {"device_id": "d"}, "revenue": "1"},  # no currency
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "att_status": "granted"},
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "limit_ad_tracking": "true"},
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "consent": {"ad_user_data": "no"}},
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "consent": {"analytics": True}},
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "language": "en_US"},
        {"event_id": "e1", "event": "install", "device": {"device_id": "d"}, "device_model": "x" * 65},
    ]
    with clock.frozen(NOW):
        for body in refused:
            data, errors = event_validate(body, event_names=NAMES)
            assert data is None and errors
            assert (data, errors) == serializer_result(body)
